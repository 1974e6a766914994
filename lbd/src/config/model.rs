//! Stage two's output: the validated configuration. Every proxy here already
//! carries what it inherited from its `defaults` section; names are resolved;
//! regexes are compiled. Later stages build the runtime snapshot from this.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::acl::{Condition, SampleExpr};
use super::addr::{ListenAddr, ServerAddr};
use super::diag::Loc;

/// A proxy's name (`frontend`, `backend`, `listen`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyName(pub String);

impl std::fmt::Display for ProxyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A server's name, unique within its backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerName(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tcp,
    Http,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Tcp => "tcp",
            Mode::Http => "http",
        }
    }
}

/// Which halves of a proxy exist: a `listen` is both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub frontend: bool,
    pub backend: bool,
}

/// Syslog facilities, as HAProxy names them.
pub const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "auth2", "ftp", "ntp", "audit", "alert", "cron2",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
];

pub const LEVELS: &[&str] = &["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"];

/// A syslog target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// `/dev/log`, a unix datagram path, `udp@host:port`, `host:port`, `stdout`, `stderr`.
    pub address: String,
    pub facility: String,
    pub level: Option<String>,
    pub min_level: Option<String>,
    pub format: Option<String>,
    pub len: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketLevel {
    User,
    Operator,
    Admin,
}

/// `stats socket PATH [mode M] [level L] ...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    pub path: PathBuf,
    pub mode: Option<u32>,
    pub level: SocketLevel,
    pub loc: Loc,
}

/// The `global` section, after lbd's implicit defaults (see DESIGN.md) and the
/// operator's lines, which override them key by key.
#[derive(Debug, Clone)]
pub struct Global {
    pub logs: Vec<LogTarget>,
    /// Process-wide connection limit; 0 means "derived from the file limit".
    pub maxconn: u32,
    /// Worker threads; `None` means one per core.
    pub nbthread: Option<u32>,
    pub stats_sockets: Vec<StatsSocket>,
    /// Time a runtime-socket client may stay idle (default 10 s).
    pub stats_timeout: Duration,
    /// `unix-bind prefix`: prepended to every `bind /path`.
    pub unix_bind_prefix: Option<String>,
    /// `crt-base`: where relative `crt` paths and certificate names are looked
    /// up (the implicit global says the SSL tab's store, `/etc/ssl/frontends`).
    pub crt_base: Option<String>,
    /// `ca-base`: where relative `ca-file` paths are looked up.
    pub ca_base: Option<String>,
    pub unix_bind_mode: Option<u32>,
    pub unix_bind_user: Option<String>,
    pub unix_bind_group: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub chroot: Option<PathBuf>,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    /// Longest time old connections may run after a reload or soft stop; `None` = unbounded.
    pub hard_stop_after: Option<Duration>,
    /// Buffer size; also the request header block limit (default 16384 bytes).
    pub tune_bufsize: u32,
    /// Room kept for header rewrites (default 1024 bytes).
    pub tune_maxrewrite: u32,
    pub ssl_default_bind_ciphers: Option<String>,
    pub ssl_default_bind_ciphersuites: Option<String>,
    pub ssl_default_bind_options: Vec<String>,
    pub ssl_default_server_ciphers: Option<String>,
    pub ssl_default_server_options: Vec<String>,
    /// Random spread of health-check intervals, in percent (0 = none).
    pub spread_checks: u32,
    pub log_tag: Option<String>,
    pub description: Option<String>,
}

impl Global {
    /// The implicit `global` of the appliance: logs to `/dev/log` on local0, the
    /// runtime socket at `/run/lbd/lbd.sock`, and `unix-bind prefix /run/lbd`.
    pub fn appliance_default() -> Self {
        Global {
            logs: vec![LogTarget {
                address: "/dev/log".into(),
                facility: "local0".into(),
                level: None,
                min_level: None,
                format: None,
                len: None,
            }],
            maxconn: 0,
            nbthread: None,
            stats_sockets: vec![StatsSocket {
                path: PathBuf::from("/run/lbd/lbd.sock"),
                mode: Some(0o600),
                level: SocketLevel::Admin,
                loc: Loc {
                    file: "<implicit global>".into(),
                    line: 0,
                },
            }],
            stats_timeout: Duration::from_secs(10),
            unix_bind_prefix: Some("/run/lbd".into()),
            crt_base: Some(crate::tls::CERT_STORE.into()),
            ca_base: None,
            unix_bind_mode: None,
            unix_bind_user: None,
            unix_bind_group: None,
            user: None,
            group: None,
            chroot: None,
            daemon: false,
            pidfile: None,
            hard_stop_after: None,
            tune_bufsize: 16_384,
            tune_maxrewrite: 1_024,
            ssl_default_bind_ciphers: None,
            ssl_default_bind_ciphersuites: None,
            ssl_default_bind_options: Vec::new(),
            ssl_default_server_ciphers: None,
            ssl_default_server_options: Vec::new(),
            spread_checks: 0,
            log_tag: None,
            description: None,
        }
    }
}

/// Every `timeout` of a proxy. `None` means not set (infinite, as in HAProxy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeouts {
    pub client: Option<Duration>,
    pub server: Option<Duration>,
    pub connect: Option<Duration>,
    pub queue: Option<Duration>,
    pub http_request: Option<Duration>,
    pub http_keep_alive: Option<Duration>,
    pub check: Option<Duration>,
    pub tunnel: Option<Duration>,
    pub tarpit: Option<Duration>,
    pub client_fin: Option<Duration>,
    pub server_fin: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    /// `random` with the number of draws (`random(2)` is power-of-two-choices).
    Random(u32),
    Uri {
        whole: bool,
        len: Option<u32>,
        depth: Option<u32>,
    },
    UrlParam(String),
    Hdr {
        name: String,
        use_domain_only: bool,
    },
    RdpCookie(Option<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashType {
    #[default]
    MapBased,
    Consistent,
}

/// How HTTP connections are handled (`option http-keep-alive` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpConnMode {
    #[default]
    KeepAlive,
    ServerClose,
    Close,
}

/// One `retry-on` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    EmptyResponse,
    JunkResponse,
    ResponseTimeout,
    Status(u16),
}

impl HttpConnMode {
    /// The stricter of a frontend's and a backend's modes (HAProxy combines them so).
    pub fn max_mode(self, other: Self) -> Self {
        let rank = |m: Self| match m {
            Self::KeepAlive => 0,
            Self::ServerClose => 1,
            Self::Close => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpReuse {
    Never,
    #[default]
    Safe,
    Aggressive,
    Always,
}

/// `option forwardfor [except NET] [header NAME] [if-none]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardFor {
    pub except: Option<String>,
    pub header: String,
    pub if_none: bool,
}

/// `option httpchk [METHOD] [URI] [VERSION]`, with the legacy form's extra
/// header lines split out of the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    Http(HttpCheck),
    SslHello,
    TcpCheck,
    Smtp,
    Mysql,
    Ldap,
    Redis,
}

/// One step of a `tcp-check` script (`option tcp-check`).
#[derive(Debug, Clone)]
pub enum TcpCheckStep {
    /// `connect [port N] [addr IP]`: (re)connects, to the check's address and
    /// port unless given.
    Connect { port: Option<u16>, addr: Option<std::net::IpAddr> },
    /// `send STRING` (escapes already read) or `send-binary HEX`.
    Send(Vec<u8>),
    /// `expect [!] string|rstring|binary|rbinary PATTERN`.
    Expect { negate: bool, matcher: TcpExpect },
}

/// What a `tcp-check expect` looks for in the data received since the last send.
#[derive(Debug, Clone)]
pub enum TcpExpect {
    /// `string`, `binary`: these bytes, anywhere.
    Bytes(Vec<u8>),
    /// `rstring`: a regex over the data as text.
    Text(regex::Regex),
    /// `rbinary`: a regex over the data written in hexadecimal (upper case).
    Hex(regex::Regex),
}

/// One `http-check expect`.
#[derive(Debug, Clone)]
pub struct HttpExpect {
    pub negate: bool,
    pub matcher: ExpectMatch,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub enum ExpectMatch {
    /// Status codes or ranges (`200`, `200-399`, `200,301`).
    Status(Vec<(u16, u16)>),
    /// Unanchored regex over the status code text: `(2|3|401)` accepts 503, as in HAProxy.
    RStatus(regex::Regex),
    String(String),
    RString(regex::Regex),
}

/// `http-check send ...`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCheckSend {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Boolean `option` switches. Each says where it acts; see docs/keywords.md.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub tcplog: bool,
    pub httplog: bool,
    pub httplog_clf: bool,
    pub dontlognull: bool,
    pub dontlog_normal: bool,
    pub log_separate_errors: bool,
    pub logasap: bool,
    pub log_health_checks: bool,
    pub redispatch: bool,
    pub contstats: bool,
    pub allbackups: bool,
    pub abortonclose: bool,
    pub splice_auto: bool,
    pub splice_request: bool,
    pub splice_response: bool,
    pub tcpka: bool,
    pub clitcpka: bool,
    pub srvtcpka: bool,
    pub http_buffer_request: bool,
    pub independent_streams: bool,
    pub persist: bool,
    pub prefer_last_server: bool,
    pub nolinger: bool,
    /// `None` until set: then on in HTTP mode, off in TCP mode, as HAProxy.
    pub tcp_smart_accept: Option<bool>,
    pub tcp_smart_connect: bool,
    pub checkcache: bool,
    pub http_ignore_probes: bool,
    pub http_no_delay: bool,
    pub http_pretend_keepalive: bool,
    pub accept_invalid_http_request: bool,
    pub accept_invalid_http_response: bool,
    pub socket_stats: bool,
    pub transparent: bool,
    pub originalto: bool,
    pub forwardfor: Option<ForwardFor>,
    pub http_conn_mode: HttpConnMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableType {
    Ip,
    Ipv6,
    Integer,
    /// Strings truncated to `len` bytes (default 32).
    String(u32),
    /// Binary keys of `len` bytes (default 32).
    Binary(u32),
}

/// `stick-table ...`: bounded memory, least recently used entry evicted when full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    pub key: TableType,
    /// Maximum number of entries.
    pub size: u64,
    /// Idle time after which an entry goes; `None` keeps entries until evicted.
    pub expire: Option<Duration>,
    /// Refuse new entries when full instead of evicting the oldest.
    pub nopurge: bool,
    pub store: Vec<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickKind {
    /// `stick on`: match, and store on the request.
    On,
    Match,
    StoreRequest,
    StoreResponse,
}

#[derive(Debug, Clone)]
pub struct StickRule {
    pub kind: StickKind,
    pub expr: SampleExpr,
    /// The table's proxy; the proxy itself when no `table` is given.
    pub table: ProxyName,
    pub cond: Option<Condition>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMode {
    Rewrite,
    Insert,
    Prefix,
}

/// `cookie NAME ...` persistence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub mode: CookieMode,
    pub indirect: bool,
    pub nocache: bool,
    pub postonly: bool,
    pub preserve: bool,
    pub httponly: bool,
    pub secure: bool,
    pub domains: Vec<String>,
    pub maxidle: Option<Duration>,
    pub maxlife: Option<Duration>,
    pub dynamic: bool,
    pub attrs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectKind {
    Location,
    Prefix,
    Scheme,
}

#[derive(Debug, Clone)]
pub struct Redirect {
    pub kind: RedirectKind,
    pub target: String,
    /// 301, 302 (default), 303, 307 or 308.
    pub code: u16,
    pub drop_query: bool,
    pub append_slash: bool,
    pub set_cookie: Option<String>,
    pub clear_cookie: Option<String>,
}

/// An `http-request` / `http-response` / `http-after-response` action.
#[derive(Debug, Clone)]
pub enum HttpAction {
    Allow,
    Deny {
        status: u16,
    },
    Tarpit {
        status: u16,
    },
    Reject,
    Auth {
        realm: Option<String>,
    },
    Redirect(Redirect),
    AddHeader {
        name: String,
        value: String,
    },
    SetHeader {
        name: String,
        value: String,
    },
    DelHeader {
        name: String,
    },
    ReplaceHeader {
        name: String,
        regex: regex::Regex,
        replace: String,
    },
    ReplaceValue {
        name: String,
        regex: regex::Regex,
        replace: String,
    },
    SetPath(String),
    SetQuery(String),
    SetUri(String),
    SetMethod(String),
    ReplacePath {
        regex: regex::Regex,
        replace: String,
    },
    SetVar {
        name: String,
        expr: SampleExpr,
    },
    UnsetVar {
        name: String,
    },
    SetStatus {
        status: u16,
        reason: Option<String>,
    },
    Return {
        status: u16,
        content_type: Option<String>,
        body: Option<String>,
    },
    SetLogLevel(String),
    Capture {
        expr: SampleExpr,
        len: u32,
    },
    TrackSc {
        index: u8,
        expr: SampleExpr,
        table: Option<ProxyName>,
    },
    SilentDrop,
    /// `use-service NAME` (`prometheus-exporter`).
    UseService(String),
}

#[derive(Debug, Clone)]
pub struct HttpRule {
    pub action: HttpAction,
    pub cond: Option<Condition>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpRuleStage {
    Connection,
    Session,
    Content,
    Response,
}

#[derive(Debug, Clone)]
pub enum TcpAction {
    Accept,
    Reject,
    TrackSc {
        index: u8,
        expr: SampleExpr,
        table: Option<ProxyName>,
    },
    SetVar {
        name: String,
        expr: SampleExpr,
    },
    ExpectProxy,
    SilentDrop,
    Close,
}

#[derive(Debug, Clone)]
pub struct TcpRule {
    pub stage: TcpRuleStage,
    pub action: TcpAction,
    pub cond: Option<Condition>,
    pub loc: Loc,
}

/// `use_backend NAME [if|unless COND]`, name resolved.
#[derive(Debug, Clone)]
pub struct SwitchRule {
    pub backend: ProxyName,
    pub cond: Option<Condition>,
    pub loc: Loc,
}

/// Parameters shared by `server` and `default-server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerParams {
    /// 0..=256, default 1. 0 means "never chosen by the balancer" (still checked).
    pub weight: u32,
    pub check: bool,
    /// Port and address health checks go to instead of the server's own.
    pub check_port: Option<u16>,
    pub check_addr: Option<std::net::IpAddr>,
    pub check_ssl: bool,
    pub check_send_proxy: bool,
    /// Interval between checks (default 2 s).
    pub inter: Duration,
    /// Interval while the server is changing state (default: `inter`).
    pub fastinter: Option<Duration>,
    /// Interval while the server is down (default: `inter`).
    pub downinter: Option<Duration>,
    /// Consecutive successes to go up (default 2).
    pub rise: u32,
    /// Consecutive failures to go down (default 3).
    pub fall: u32,
    pub observe: Option<Observe>,
    /// Errors seen by `observe` before `on-error` acts (default 10).
    pub error_limit: u32,
    pub on_error: OnError,
    pub on_marked_down_shutdown: bool,
    pub on_marked_up_shutdown_backup: bool,
    pub backup: bool,
    pub disabled: bool,
    /// Concurrent connections to the server; 0 = unlimited.
    pub maxconn: u32,
    pub minconn: u32,
    /// Queue length for this server; 0 = unlimited.
    pub maxqueue: u32,
    pub send_proxy: Option<ProxyVersion>,
    pub ssl: bool,
    pub verify_required: Option<bool>,
    pub ca_file: Option<PathBuf>,
    pub crt: Option<PathBuf>,
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub init_addr: Option<String>,
    pub slowstart: Option<Duration>,
    pub resolve_prefer: Option<String>,
    pub non_stick: bool,
    pub redir: Option<String>,
    pub source: Option<String>,
    pub track: Option<String>,
    pub pool_max_conn: Option<i64>,
    pub pool_purge_delay: Option<Duration>,
    pub tfo: bool,
    pub agent_check: bool,
    /// The client side of `ssl` toward this server, built from `verify` and `ca-file`.
    pub tls: crate::tls::Shared<rustls::ClientConfig>,
    /// `ssl-min-ver`, `ssl-max-ver`, `ciphers`, `ciphersuites`, `curves` toward this server.
    pub tls_choices: crate::tls::TlsChoices,
}

impl Default for ServerParams {
    fn default() -> Self {
        ServerParams {
            weight: 1,
            check: false,
            check_port: None,
            check_addr: None,
            check_ssl: false,
            check_send_proxy: false,
            inter: Duration::from_secs(2),
            fastinter: None,
            downinter: None,
            rise: 2,
            fall: 3,
            observe: None,
            error_limit: 10,
            on_error: OnError::FailCheck,
            on_marked_down_shutdown: false,
            on_marked_up_shutdown_backup: false,
            backup: false,
            disabled: false,
            maxconn: 0,
            minconn: 0,
            maxqueue: 0,
            send_proxy: None,
            ssl: false,
            verify_required: None,
            ca_file: None,
            crt: None,
            sni: None,
            alpn: None,
            init_addr: None,
            slowstart: None,
            resolve_prefer: None,
            non_stick: false,
            redir: None,
            source: None,
            track: None,
            pool_max_conn: None,
            pool_purge_delay: None,
            tfo: false,
            agent_check: false,
            tls: crate::tls::Shared(None),
            tls_choices: crate::tls::TlsChoices::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    Layer4,
    Layer7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    FastInter,
    FailCheck,
    SuddenDeath,
    MarkDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub name: ServerName,
    pub addr: ServerAddr,
    /// `id`, or the next free number in declaration order, as HAProxy assigns it.
    pub id: u32,
    /// The `cookie` value this server answers to.
    pub cookie: Option<String>,
    pub params: ServerParams,
    pub loc: Loc,
}

/// Parameters of a `bind` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindParams {
    pub name: Option<String>,
    pub accept_proxy: bool,
    pub backlog: Option<u32>,
    pub maxconn: Option<u32>,
    /// Mode of a UNIX socket, octal.
    pub mode: Option<u32>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub v4v6: bool,
    pub v6only: bool,
    pub transparent: bool,
    pub defer_accept: bool,
    pub tfo: bool,
    pub interface: Option<String>,
    pub id: Option<u32>,
    pub ssl: bool,
    pub crt: Vec<String>,
    pub alpn: Option<String>,
    pub ca_file: Option<String>,
    pub verify: Option<String>,
    pub ssl_min_ver: Option<String>,
    pub ssl_max_ver: Option<String>,
    pub ciphers: Option<String>,
    pub ciphersuites: Option<String>,
    pub curves: Option<String>,
    /// lbd's own `key FILE`: the private key of the `crt` just before it (by
    /// index in `crt`), when it is kept apart.
    pub keys: Vec<(usize, String)>,
    /// The TLS settings `ssl` and `crt` built, certificates loaded.
    pub tls: crate::tls::Shared<rustls::ServerConfig>,
    pub no_tls12: bool,
    pub no_tls13: bool,
    /// `strict-sni`: no certificate (the handshake fails) when the SNI matches none.
    pub strict_sni: bool,
}

#[derive(Debug, Clone)]
pub struct Bind {
    pub addrs: Vec<ListenAddr>,
    pub params: BindParams,
    pub loc: Loc,
}

/// A named ACL: several `acl` lines with one name are ORed.
#[derive(Debug, Clone)]
pub struct AclDef {
    pub name: String,
    pub exprs: Vec<super::acl::AclExpr>,
}

/// A frontend, backend or listen section, with its inherited defaults applied.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub name: ProxyName,
    pub caps: Caps,
    pub mode: Mode,
    pub loc: Loc,
    pub id: Option<u32>,
    pub disabled: bool,
    pub description: Option<String>,
    pub logs: Vec<LogTarget>,
    /// `log global` was said: use the global targets too.
    pub log_global: bool,
    pub log_format: Option<String>,
    pub options: Options,
    pub timeouts: Timeouts,
    /// Frontend connection limit (default 2000 as HAProxy, or the global maxconn).
    pub maxconn: Option<u32>,
    pub backlog: Option<u32>,
    /// Connection retries after a failed connect (default 3).
    pub retries: u32,
    /// `retry-on`: what besides a failed connect sends a request again (empty = connect failures only).
    pub retry_on: Vec<RetryOn>,
    pub fullconn: Option<u32>,
    pub balance: Balance,
    pub hash_type: HashType,
    pub http_reuse: HttpReuse,
    pub binds: Vec<Bind>,
    pub default_server: ServerParams,
    pub servers: Vec<Server>,
    pub acls: BTreeMap<String, AclDef>,
    pub default_backend: Option<ProxyName>,
    pub switching_rules: Vec<SwitchRule>,
    pub redirects: Vec<(Redirect, Option<Condition>, Loc)>,
    pub monitor_uri: Option<String>,
    pub monitor_fail: Vec<Condition>,
    pub stick_table: Option<StickTable>,
    pub stick_rules: Vec<StickRule>,
    pub cookie: Option<Cookie>,
    pub errorfiles: BTreeMap<u16, PathBuf>,
    pub http_request: Vec<HttpRule>,
    pub http_response: Vec<HttpRule>,
    pub http_after_response: Vec<HttpRule>,
    pub tcp_rules: Vec<TcpRule>,
    pub inspect_delay: Option<Duration>,
    pub check: CheckKind,
    pub http_check_send: Option<HttpCheckSend>,
    pub http_expects: Vec<HttpExpect>,
    /// The `tcp-check` script, in order.
    pub tcp_checks: Vec<TcpCheckStep>,
    /// `capture request header NAME len N`, in order.
    pub captures: Vec<(String, u32)>,
    /// `capture response header NAME len N`, in order.
    pub res_captures: Vec<(String, u32)>,
    pub unique_id_format: Option<String>,
    pub unique_id_header: Option<String>,
    pub stats_uri: Option<String>,
    pub stats_enabled: bool,
    /// `stats auth user:password` pairs; none means no authentication.
    pub stats_auth: Vec<(String, String)>,
    pub stats_realm: Option<String>,
    /// Page refresh interval sent to browsers.
    pub stats_refresh: Option<Duration>,
    /// `stats admin if COND`: who may act on servers from the page.
    pub stats_admin: Vec<Condition>,
    pub max_keep_alive_queue: Option<i64>,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub global: Global,
    pub proxies: Vec<Proxy>,
}

impl Config {
    pub fn proxy(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.name.0 == name)
    }

    pub fn backend(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.caps.backend && p.name.0 == name)
    }

    pub fn frontend(&self, name: &str) -> Option<&Proxy> {
        self.proxies.iter().find(|p| p.caps.frontend && p.name.0 == name)
    }
}
