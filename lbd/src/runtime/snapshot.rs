//! The runtime snapshot: the validated model turned into what the data path
//! reads. Built whole from a [`Config`]; names are resolved to `Arc`s, and every
//! counter that changes at run time is an atomic (no lock on the data path,
//! except the small per-backend balancer state).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::balance::Balancer;
use super::log::{Logger, Sink};
use super::stick::Table;
use crate::config::acl::Condition;
use crate::config::addr::{ListenAddr, ServerAddr, ServerPort};
use crate::config::model::{Config, Global, Proxy, Server, StickKind};

/// The live state of a server. It outlives snapshots: a reload that keeps a
/// server (same backend and server name) keeps this state, so health, counters
/// and operator actions carry over.
pub struct ServerState {
    /// Up as far as health checks (or the lack of them) say.
    up: AtomicBool,
    /// Taken out by the operator (`disabled`, `set server ... state maint`).
    pub maint: AtomicBool,
    /// Draining: no new clients from the balancer; sticky clients still come.
    pub drain: AtomicBool,
    /// Health checks paused by `disable health`.
    pub checks_paused: AtomicBool,
    pub weight: AtomicU32,
    pub cur_conns: AtomicU32,
    pub max_conns: AtomicU32,
    pub total_conns: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connect_errors: AtomicU64,
    pub checks_failed: AtomicU64,
    /// Times the server went down.
    pub downs: AtomicU64,
    /// Unix time (s) of the last state change.
    pub last_change: AtomicU64,
    /// Consecutive errors seen by `observe layer4`.
    pub observed_errors: AtomicU32,
    /// Bumped to cut every live session of the server (`shutdown-sessions`).
    kill_gen: AtomicU64,
    /// Woken to make the server's sessions look at `kill_gen` and their
    /// snapshot's `hard_stopped` (one small waiter per session).
    pub wake: Notify,
    /// Woken when a connection slot frees (for `maxconn` queues).
    pub slot_freed: Notify,
    /// Health bookkeeping, only touched by the server's check task.
    pub health: Mutex<Health>,
}

/// HAProxy's health counter: 0..rise+fall-1; at or above `rise` the server is up.
#[derive(Debug, Clone)]
pub struct Health {
    pub value: u32,
    pub last_status: String,
    pub last_code: Option<u16>,
    pub last_duration_ms: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ServerState {
    fn new(conf: &Server) -> Self {
        ServerState {
            up: AtomicBool::new(true),
            maint: AtomicBool::new(conf.params.disabled),
            drain: AtomicBool::new(false),
            checks_paused: AtomicBool::new(false),
            weight: AtomicU32::new(conf.params.weight),
            cur_conns: AtomicU32::new(0),
            max_conns: AtomicU32::new(0),
            total_conns: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            checks_failed: AtomicU64::new(0),
            downs: AtomicU64::new(0),
            last_change: AtomicU64::new(unix_now()),
            observed_errors: AtomicU32::new(0),
            kill_gen: AtomicU64::new(0),
            wake: Notify::new(),
            slot_freed: Notify::new(),
            // HAProxy starts a server up with the counter at `rise`: one failed check takes it down.
            health: Mutex::new(Health {
                value: conf.params.rise,
                last_status: "initial".into(),
                last_code: None,
                last_duration_ms: 0,
            }),
        }
    }
}

/// One server of a snapshot: its configuration and its (carried-over) state.
pub struct ServerRt {
    pub conf: Server,
    pub backend: String,
    pub state: Arc<ServerState>,
    /// Idle HTTP connections to this server, for reuse.
    pub pool: super::http::Pool,
    /// `sni`, parsed once (the configuration check proved it parses).
    sni: Option<crate::config::acl::SampleExpr>,
}

impl std::ops::Deref for ServerRt {
    type Target = ServerState;
    fn deref(&self) -> &ServerState {
        &self.state
    }
}

impl ServerRt {
    pub fn name(&self) -> &str {
        &self.conf.name.0
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire) && !self.maint.load(Ordering::Acquire)
    }

    /// Up as far as health checks say, whatever the operator did.
    pub fn is_up_by_checks(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn set_up(&self, up: bool) {
        if self.up.swap(up, Ordering::AcqRel) != up {
            self.last_change.store(unix_now(), Ordering::Relaxed);
            if !up {
                self.downs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Usable by the balancer: a free slot when `maxconn` is set.
    pub fn has_slot(&self) -> bool {
        let max = self.conf.params.maxconn;
        max == 0 || self.cur_conns.load(Ordering::Acquire) < max
    }

    /// The kill generation a new session starts with.
    pub fn kill_generation(&self) -> u64 {
        self.kill_gen.load(Ordering::Acquire)
    }

    /// Cuts every session of this server at once.
    pub fn shutdown_sessions(&self) {
        self.kill_gen.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_waiters();
    }

    /// Where to connect for a client that connected to `local_port`: an
    /// address, or a UNIX socket.
    pub fn endpoint(&self, local_port: u16) -> Option<super::tls_io::Target<'_>> {
        match &self.conf.addr {
            ServerAddr::Unix(p) => Some(super::tls_io::Target::Unix(p)),
            _ => self.target(local_port).map(super::tls_io::Target::Inet),
        }
    }

    /// The TLS settings toward this server and the SNI to send, when it says
    /// `ssl`; `sni` is evaluated for the client's connection (no HTTP fetches).
    pub fn tls_for(
        &self,
        snapshot: &Snapshot,
        fe: &FrontendRt,
        be: &BackendRt,
        acc: &super::session::Accepted,
    ) -> Option<(Arc<rustls::ClientConfig>, Option<String>)> {
        if !self.conf.params.ssl {
            return None;
        }
        let cfg = self.conf.params.tls.0.clone()?;
        let sni = self.sni.as_ref().and_then(|expr| {
            let ctx = super::acl_eval::SampleCtx::for_client(acc, snapshot, fe, Some(be), None);
            super::acl_eval::fetch(expr, &ctx).map(|s| s.as_text().into_owned())
        });
        Some((cfg, sni))
    }

    /// The address to connect to for a client that connected to `local_port`.
    pub fn target(&self, local_port: u16) -> Option<SocketAddr> {
        match &self.conf.addr {
            ServerAddr::Inet { ip, port } => {
                let p = match port {
                    ServerPort::Fixed(p) => *p,
                    ServerPort::ClientPort => local_port,
                    ServerPort::Offset(o) => u16::try_from(i32::from(local_port) + o).ok()?,
                };
                Some(SocketAddr::new(*ip, p))
            }
            ServerAddr::Unix(_) => None,
        }
    }
}

/// A stick rule with its table resolved.
pub struct StickRuleRt {
    pub kind: StickKind,
    pub rule: crate::config::model::StickRule,
    pub table: Arc<Table>,
}

pub struct BackendRt {
    pub conf: Proxy,
    pub servers: Vec<Arc<ServerRt>>,
    pub balancer: Balancer,
    pub stick_rules: Vec<StickRuleRt>,
    pub cur_conns: AtomicU32,
    pub max_conns: AtomicU32,
    pub total_conns: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Woken when any server of the backend frees a slot.
    pub slot_freed: Notify,
}

impl BackendRt {
    pub fn name(&self) -> &str {
        &self.conf.name.0
    }

    /// Servers currently up (what `nbsrv` counts).
    pub fn usable_servers(&self) -> usize {
        self.servers.iter().filter(|s| s.is_up()).count()
    }

    pub fn server_by_id(&self, id: u32) -> Option<&Arc<ServerRt>> {
        self.servers.iter().find(|s| s.conf.id == id)
    }

    pub fn active_and_backup_up(&self) -> (usize, usize) {
        let act = self.servers.iter().filter(|s| s.is_up() && !s.conf.params.backup).count();
        let bck = self.servers.iter().filter(|s| s.is_up() && s.conf.params.backup).count();
        (act, bck)
    }
}

pub struct FrontendRt {
    pub conf: Proxy,
    pub default_backend: Option<Arc<BackendRt>>,
    pub switching: Vec<(Arc<BackendRt>, Option<Condition>)>,
    pub cur_conns: AtomicU32,
    pub max_conns: AtomicU32,
    pub total_conns: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// `maxconn` of the frontend, as permits taken before `accept`.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
    /// The frontend's own log targets, plus the global ones with `log global`.
    pub logger: Logger,
}

impl FrontendRt {
    pub fn name(&self) -> &str {
        &self.conf.name.0
    }
}

/// Everything a connection needs, immutable once built.
pub struct Snapshot {
    pub global: Global,
    pub frontends: Vec<Arc<FrontendRt>>,
    pub backends: HashMap<String, Arc<BackendRt>>,
    pub tables: HashMap<String, Arc<Table>>,
    pub logger: Logger,
    /// Which configuration this is (a hash of the files' text).
    pub config_hash: String,
    /// Turns true when a newer snapshot replaced this one and `hard-stop-after`
    /// ran out: the sessions still on it end.
    pub hard_stopped: AtomicBool,
    /// Turns true when a newer snapshot replaced this one or lbd stops gracefully:
    /// HTTP keep-alive connections on it close after their next response.
    pub retired: AtomicBool,
    /// Turns true when lbd stops (gracefully, or `hard-stop-after` ran out):
    /// idle HTTP keep-alive connections close at once.
    pub close_idle: AtomicBool,
    /// Woken when `close_idle` turns true.
    pub retire_signal: Notify,
}

impl Snapshot {
    /// Asks the HTTP connections still on this snapshot to finish: each closes
    /// after its next response (what HAProxy did before 2.4, and still does with
    /// `option idle-close-on-response`), so a client about to reuse an idle
    /// connection during a reload never loses its request. With `close_idle`
    /// (lbd is stopping), idle connections close at once too.
    pub fn retire(&self, close_idle: bool) {
        self.retired.store(true, Ordering::Release);
        if close_idle {
            self.close_idle.store(true, Ordering::Release);
            self.retire_signal.notify_waiters();
        }
    }

    /// Ends the sessions still running on this (replaced) snapshot.
    pub fn hard_stop(&self) {
        self.hard_stopped.store(true, Ordering::Release);
        self.retire(true);
        for b in self.backends.values() {
            for s in &b.servers {
                s.wake.notify_waiters();
            }
        }
    }

    /// The frontend that binds `addr` in this snapshot.
    pub fn frontend_for(&self, addr: &ListenAddr) -> Option<&Arc<FrontendRt>> {
        self.frontends.iter().find(|f| f.conf.binds.iter().any(|b| b.addrs.contains(addr)))
    }

    /// Builds the snapshot; starts the log writers, so it must run inside the
    /// runtime. Servers and stick tables of `previous` with the same names keep
    /// their state.
    pub fn build(config: &Config, config_hash: &str, previous: Option<&Snapshot>) -> Self {
        let global_sinks: Vec<Arc<Sink>> = config.global.logs.iter().filter_map(Sink::start).collect();
        let tag = config.global.log_tag.clone().unwrap_or_else(|| "lbd".into());
        let logger = Logger::new(global_sinks.clone(), &tag);
        let mut tables = HashMap::new();
        for p in &config.proxies {
            if let Some(t) = &p.stick_table {
                let kept = previous.and_then(|prev| prev.tables.get(&p.name.0)).filter(|old| old.same_shape(t));
                let table = kept.cloned().unwrap_or_else(|| Arc::new(Table::new(t)));
                tables.insert(p.name.0.clone(), table);
            }
        }
        let mut backends = HashMap::new();
        for p in config.proxies.iter().filter(|p| p.caps.backend) {
            let old_backend = previous.and_then(|prev| prev.backends.get(&p.name.0));
            let servers: Vec<Arc<ServerRt>> = p
                .servers
                .iter()
                .map(|s| {
                    let state = match old_backend.and_then(|b| b.servers.iter().find(|o| o.conf.name == s.name)) {
                        Some(old) => {
                            old.state.weight.store(s.params.weight, Ordering::Relaxed);
                            Arc::clone(&old.state)
                        }
                        None => Arc::new(ServerState::new(s)),
                    };
                    Arc::new(ServerRt {
                        conf: s.clone(),
                        backend: p.name.0.clone(),
                        state,
                        pool: Default::default(),
                        sni: s.params.sni.as_deref().and_then(|e| crate::config::acl::parse_sample(e).ok()),
                    })
                })
                .collect();
            let stick_rules = p
                .stick_rules
                .iter()
                .filter_map(|r| {
                    tables.get(&r.table.0).map(|t| StickRuleRt {
                        kind: r.kind,
                        rule: r.clone(),
                        table: Arc::clone(t),
                    })
                })
                .collect();
            let b = BackendRt {
                balancer: Balancer::new(&p.balance, p.hash_type, servers.len()),
                conf: p.clone(),
                servers,
                stick_rules,
                cur_conns: AtomicU32::new(0),
                max_conns: AtomicU32::new(0),
                total_conns: AtomicU64::new(0),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
                slot_freed: Notify::new(),
            };
            backends.insert(p.name.0.clone(), Arc::new(b));
        }
        let mut frontends = Vec::new();
        for p in config.proxies.iter().filter(|p| p.caps.frontend && !p.disabled) {
            let default_backend = match &p.default_backend {
                Some(n) => backends.get(&n.0).cloned(),
                // A listen section is its own backend.
                None if p.caps.backend => backends.get(&p.name.0).cloned(),
                None => None,
            };
            let switching = p
                .switching_rules
                .iter()
                .filter_map(|r| backends.get(&r.backend.0).map(|b| (Arc::clone(b), r.cond.clone())))
                .collect();
            let mut sinks: Vec<Arc<Sink>> = p.logs.iter().filter_map(Sink::start).collect();
            if p.log_global {
                sinks.extend(global_sinks.iter().cloned());
            }
            frontends.push(Arc::new(FrontendRt {
                slots: p
                    .maxconn
                    .filter(|m| *m > 0)
                    .map(|m| Arc::new(tokio::sync::Semaphore::new(m as usize))),
                logger: Logger::new(sinks, &tag),
                conf: p.clone(),
                default_backend,
                switching,
                cur_conns: AtomicU32::new(0),
                max_conns: AtomicU32::new(0),
                total_conns: AtomicU64::new(0),
                bytes_in: AtomicU64::new(0),
                bytes_out: AtomicU64::new(0),
            }));
        }
        Snapshot {
            global: config.global.clone(),
            frontends,
            backends,
            tables,
            logger,
            config_hash: config_hash.to_owned(),
            hard_stopped: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            close_idle: AtomicBool::new(false),
            retire_signal: Notify::new(),
        }
    }
}
