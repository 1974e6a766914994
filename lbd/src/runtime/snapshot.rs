//! The runtime snapshot: the validated model turned into what the data path
//! reads. Built whole from a [`Config`]; names are resolved to `Arc`s, and every
//! counter that changes at run time is an atomic (no lock on the data path,
//! except the small per-backend balancer state).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use super::balance::Balancer;
use super::log::{Logger, Sink};
use super::stick::Table;
use crate::config::acl::Condition;
use crate::config::addr::{ServerAddr, ServerPort};
use crate::config::model::{Config, Global, Proxy, Server, StickKind};

/// One server and its live state.
pub struct ServerRt {
    pub conf: Server,
    pub backend: String,
    /// Up as far as health checks (or the lack of them) say.
    up: AtomicBool,
    /// Taken out by the operator (`disabled`).
    pub maint: AtomicBool,
    pub weight: AtomicU32,
    pub cur_conns: AtomicU32,
    pub total_conns: AtomicU64,
    /// Consecutive errors seen by `observe layer4`.
    pub observed_errors: AtomicU32,
    /// Bumped to cut every live session of the server (`shutdown-sessions`).
    kill: watch::Sender<u64>,
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
}

impl ServerRt {
    fn new(conf: Server, backend: &str) -> Self {
        let up = true;
        let weight = conf.params.weight;
        // HAProxy starts a server up with the counter at `rise`: one failed check takes it down.
        let health = conf.params.rise;
        ServerRt {
            backend: backend.to_owned(),
            up: AtomicBool::new(up),
            maint: AtomicBool::new(conf.params.disabled),
            weight: AtomicU32::new(weight),
            cur_conns: AtomicU32::new(0),
            total_conns: AtomicU64::new(0),
            observed_errors: AtomicU32::new(0),
            kill: watch::channel(0).0,
            slot_freed: Notify::new(),
            health: Mutex::new(Health {
                value: health,
                last_status: "initial".into(),
            }),
            conf,
        }
    }

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
        self.up.store(up, Ordering::Release);
    }

    /// Usable by the balancer: up, weight above zero, and a free slot when `maxconn` is set.
    pub fn has_slot(&self) -> bool {
        let max = self.conf.params.maxconn;
        max == 0 || self.cur_conns.load(Ordering::Acquire) < max
    }

    pub fn kill_receiver(&self) -> watch::Receiver<u64> {
        self.kill.subscribe()
    }

    /// Cuts every session of this server at once.
    pub fn shutdown_sessions(&self) {
        self.kill.send_modify(|g| *g += 1);
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
    pub total_conns: AtomicU64,
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
    pub total_conns: AtomicU64,
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
}

impl Snapshot {
    /// Builds the snapshot; starts the log writers, so it must run inside the runtime.
    pub fn build(config: &Config) -> Self {
        let global_sinks: Vec<Arc<Sink>> = config.global.logs.iter().filter_map(Sink::start).collect();
        let tag = config.global.log_tag.clone().unwrap_or_else(|| "lbd".into());
        let logger = Logger::new(global_sinks.clone(), &tag);
        let mut tables = HashMap::new();
        for p in &config.proxies {
            if let Some(t) = &p.stick_table {
                tables.insert(p.name.0.clone(), Arc::new(Table::new(t)));
            }
        }
        let mut backends = HashMap::new();
        for p in config.proxies.iter().filter(|p| p.caps.backend) {
            let servers: Vec<Arc<ServerRt>> = p.servers.iter().map(|s| Arc::new(ServerRt::new(s.clone(), &p.name.0))).collect();
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
                balancer: Balancer::new(&p.balance, servers.len()),
                conf: p.clone(),
                servers,
                stick_rules,
                cur_conns: AtomicU32::new(0),
                total_conns: AtomicU64::new(0),
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
                logger: Logger::new(sinks, &tag),
                conf: p.clone(),
                default_backend,
                switching,
                cur_conns: AtomicU32::new(0),
                total_conns: AtomicU64::new(0),
            }));
        }
        Snapshot {
            global: config.global.clone(),
            frontends,
            backends,
            tables,
            logger,
        }
    }
}
