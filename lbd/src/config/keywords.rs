//! The keyword table: which sections accept each keyword, whether lbd supports
//! it, and a one-line description. `lbd/docs/keywords.md` is generated from it
//! (`lbd --keywords-md`) and a test keeps the two in step.

use super::syntax::SectionKind;

/// What a section does with a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted and acted on.
    Yes,
    /// Accepted with a warning and ignored: the proxy lacks the capability
    /// (`timeout server` in a frontend), as HAProxy does.
    Ignored,
    /// An error.
    No,
}

pub struct Keyword {
    pub name: &'static str,
    /// Verdicts for global, defaults, frontend, backend, listen, as five letters:
    /// `y` yes, `w` ignored with a warning, `n` no.
    pub sections: &'static str,
    pub doc: &'static str,
    /// How lbd differs from HAProxy, if it does.
    pub differs: &'static str,
}

impl Keyword {
    pub fn verdict(&self, kind: SectionKind) -> Verdict {
        let idx = match kind {
            SectionKind::Global => 0,
            SectionKind::Defaults => 1,
            SectionKind::Frontend => 2,
            SectionKind::Backend => 3,
            SectionKind::Listen => 4,
        };
        match self.sections.as_bytes().get(idx) {
            Some(b'y') => Verdict::Yes,
            Some(b'w') => Verdict::Ignored,
            _ => Verdict::No,
        }
    }
}

const fn k(name: &'static str, sections: &'static str, doc: &'static str) -> Keyword {
    Keyword {
        name,
        sections,
        doc,
        differs: "",
    }
}

const fn kd(name: &'static str, sections: &'static str, doc: &'static str, differs: &'static str) -> Keyword {
    Keyword {
        name,
        sections,
        doc,
        differs,
    }
}

/// Keywords of the `global` section.
pub const GLOBAL: &[Keyword] = &[
    k("log", "y----", "Syslog target: `/dev/log`, a unix datagram path, `[udp@]host:port`, `stdout`/`stderr`; facility, optional level and minimum level."),
    k("maxconn", "y----", "Process-wide limit of concurrent connections."),
    k("nbthread", "y----", "Worker threads (default: one per core)."),
    k("stats", "y----", "`stats socket PATH [mode M] [level user|operator|admin]` (the runtime API) and `stats timeout T`."),
    k("unix-bind", "y----", "`prefix P`, `mode M`, `user U`, `group G` for every `bind /path`."),
    k("user", "y----", "User to run as."),
    k("group", "y----", "Group to run as."),
    k("uid", "y----", "Numeric user to run as."),
    k("gid", "y----", "Numeric group to run as."),
    kd("chroot", "y----", "Directory to chroot into.", "Accepted; the appliance's read-only root makes it unnecessary."),
    kd("daemon", "y----", "Accepted for compatibility.", "lbd always runs in the foreground under the init system."),
    k("pidfile", "y----", "Where to write the process id."),
    k("hard-stop-after", "y----", "Longest time old connections may run after a reload or soft stop."),
    kd("tune.bufsize", "y----", "Buffer size; also the largest request header block (default 16384).", "A size suffix (`16k`) is accepted; HAProxy mis-reads it."),
    k("tune.maxrewrite", "y----", "Room reserved in the buffer for header rewrites (default 1024)."),
    k("crt-base", "y----", "Directory of relative `crt` paths and certificate names (default: the SSL tab's store, `/etc/ssl/frontends`)."),
    k("ca-base", "y----", "Directory of relative `ca-file` paths."),
    k("ssl-default-bind-ciphers", "y----", "TLS 1.2 ciphers for every `bind ... ssl`."),
    k("ssl-default-bind-ciphersuites", "y----", "TLS 1.3 suites for every `bind ... ssl`."),
    k("ssl-default-bind-options", "y----", "Options such as `ssl-min-ver TLSv1.2` for every `bind ... ssl`."),
    k("ssl-default-server-ciphers", "y----", "TLS 1.2 ciphers toward servers."),
    k("ssl-default-server-options", "y----", "Options toward servers."),
    k("spread-checks", "y----", "Random spread of check intervals, in percent (0-50)."),
    k("log-tag", "y----", "Tag of syslog lines (default: the program name)."),
    k("description", "y----", "Free text shown on the stats page."),
    k("node", "y----", "Node name shown on the stats page."),
    k("master-worker", "y----", "Accepted for compatibility."),
];

/// Keywords of `defaults`, `frontend`, `backend` and `listen`.
/// Sections: global, defaults, frontend, backend, listen.
pub const PROXY: &[Keyword] = &[
    k("mode", "nyyyy", "`tcp` or `http`."),
    k("log", "nyyyy", "`log global`, or a target as in `global`."),
    k("no", "nyyyy", "`no option NAME` turns an inherited option off."),
    k("option", "nyyyy", "Boolean and parameterised options; see the option table."),
    k("timeout", "nyyyy", "`client`, `server`, `connect`, `queue`, `http-request`, `http-keep-alive`, `check`, `tunnel`, `tarpit`, `client-fin`, `server-fin`."),
    k("maxconn", "nyywy", "Frontend connection limit."),
    k("backlog", "nyywy", "Listen backlog of the frontend's sockets."),
    k("retries", "nywyy", "Connection attempts after a failed connect."),
    k("retry-on", "nywyy", "When a request is sent again: `conn-failure` (default), `empty-response`, `junk-response`, `response-timeout`, status codes `404 408 425 500 501 502 503 504`, `all-retryable-errors`, `none`. Only requests without a body are replayed."),
    k("fullconn", "nywyy", "Backend load at which servers reach their `maxconn` (with `minconn`)."),
    k("balance", "nywyy", "`roundrobin`, `static-rr`, `leastconn`, `first`, `source`, `random[(N)]`, `uri`, `url_param`, `hdr(NAME)`, `rdp-cookie`."),
    k("hash-type", "nywyy", "`map-based` or `consistent` for hashing algorithms."),
    k("http-reuse", "nywyy", "`never`, `safe` (default), `aggressive`, `always`."),
    k("bind", "nnywy", "Listening addresses with parameters (`name`, `accept-proxy`, `backlog`, `maxconn`, `mode`, `user`, `group`, `v4v6`, `v6only`, ...); TLS with `ssl crt PATH|DIR|NAME [crt ...]` (SNI picks among the certificates; lbd's own `key FILE` gives the key of the `crt` before it, kept apart), `alpn`, `ssl-min-ver`, `ssl-max-ver`, `ciphers`, `ciphersuites`, `curves`, `verify required ca-file F` for client certificates, `strict-sni`, `no-tlsv12`/`no-tlsv13`; `crt-list` and `crl-file` are refused for now; not on UNIX sockets."),
    k("server", "nnnyy", "A server and its parameters."),
    k("default-server", "nynyy", "Parameters every following server of the proxy starts from."),
    k("default_backend", "nyywy", "Backend used when no `use_backend` rule matches."),
    k("use_backend", "nnyny", "Content switching: `use_backend NAME [if|unless COND]`."),
    k("acl", "nnyyy", "Named ACL: `acl NAME FETCH [flags] [patterns]`; several lines with one name are ORed."),
    k("redirect", "nnyyy", "`redirect location|prefix|scheme TARGET [code N] [drop-query] [append-slash] [set-cookie C] [clear-cookie C] [if|unless COND]`."),
    k("monitor-uri", "nyywy", "URI answered 200 (or 503 when `monitor fail` holds) without a backend."),
    k("monitor", "nnywy", "`monitor fail if|unless COND`."),
    k("stick-table", "nnyyy", "`type ip|ipv6|integer|string [len N]|binary [len N] size N [expire T] [nopurge] [store ...]`."),
    k("stick", "nnwyy", "`stick on|match|store-request|store-response FETCH [table NAME] [if|unless COND]`."),
    kd("cookie", "nywyy", "Cookie persistence: `cookie NAME [rewrite|insert|prefix] [indirect] [nocache] [postonly] [preserve] [httponly] [secure] [domain D] [maxidle T] [maxlife T]`.", "With `maxidle`/`maxlife`, inserted cookies carry lbd's own date stamps (`VALUE|LAST|FIRST`, base 36 seconds; not HAProxy's encoding); `nocache` adds a `Cache-Control: private` line to a response that gets the cookie when a shared cache could keep it, as HAProxy judges it; `postonly` and `preserve` have no effect."),
    k("errorfile", "nyyyy", "`errorfile CODE FILE`: a raw HTTP response sent instead of lbd's own."),
    k("http-request", "nnyyy", "Request rules; see the action list."),
    k("http-response", "nnyyy", "Response rules."),
    k("http-after-response", "nnyyy", "Rules on every response, lbd's own included."),
    k("tcp-request", "nnyyy", "`connection` (frontend), `session`, `content` rules and `inspect-delay`."),
    k("tcp-response", "nnnyy", "`content` rules and `inspect-delay`."),
    k("http-check", "nywyy", "`expect [!] status|rstatus|string|rstring PATTERN`, `send meth M uri U ver V hdr N V body B`."),
    k("tcp-check", "nywyy", "Scripted TCP health check steps: `connect`, `send`, `send-binary`, `expect [!] string|rstring|binary|rbinary P`."),
    k("description", "nnyyy", "Free text shown on the stats page."),
    k("disabled", "nnyyy", "The proxy is declared but not started."),
    k("enabled", "nyyyy", "Cancels `disabled`."),
    k("id", "nnyyy", "Numeric proxy id shown in stats."),
    k("capture", "nnywy", "`capture request|response header NAME len N`: the values appear in the httplog line as `{request|...} {response|...}`."),
    k("unique-id-format", "nyyyy", "Log-format of the unique request id."),
    k("unique-id-header", "nyyyy", "Header that carries the unique id to servers."),
    k("log-format", "nyyyy", "Custom log line format."),
    k("log-tag", "nyyyy", "Syslog tag for this proxy."),
    k("stats", "nyyyy", "`stats enable`, `stats uri U`, `stats refresh T`, `stats realm R`, `stats auth U:P`, `stats admin if COND`, `stats show-legends`, `stats hide-version`."),
    kd("max-keep-alive-queue", "nywyy", "Queue length above which keep-alive reuse gives up on a server.", "Accepted; without effect."),
    k("rate-limit", "nyywy", "`rate-limit sessions N`: new sessions per second."),
    k("source", "nywyy", "Source address for connections to servers."),
    kd("force-persist", "nnwyy", "Persist even to a down server when the condition holds.", "Accepted; without effect."),
    kd("ignore-persist", "nnwyy", "Ignore persistence when the condition holds.", "Accepted; without effect."),
    k("use-server", "nnnyy", "`use-server NAME if COND`."),
    k("compression", "nyyyy", "`compression algo|type|offload`."),
    k("http-error", "nyyyy", "`http-error status N [content-type T] [errorfile F | string S]`."),
];

/// The options lbd knows. Sections: defaults, frontend, backend, listen
/// (a `-` stands in for global, where no option is allowed).
pub const OPTIONS: &[Keyword] = &[
    k("tcplog", "nyyyy", "TCP log format."),
    k(
        "httplog",
        "nyywy",
        "HTTP log format (`option httplog clf` for the common log format); ignored in a backend.",
    ),
    k("dontlognull", "nyywy", "Do not log connections that carried no data."),
    k("dontlog-normal", "nyywy", "Log only errors (HTTP and TCP): redispatched, retried, ended abnormally, or status 500 and up."),
    k("log-separate-errors", "nyywy", "Log errors (as `dontlog-normal` judges them) at the `err` level."),
    k(
        "logasap",
        "nyywy",
        "Log an HTTP transaction when the server's response head comes, a TCP session when its server is connected; the total time and bytes then read `+N` (so far).",
    ),
    k(
        "log-health-checks",
        "nywyy",
        "Log every check that changes a server's health, not only its state changes.",
    ),
    k(
        "redispatch",
        "nywyy",
        "The last retry goes to another server; persistence may be broken.",
    ),
    k(
        "contstats",
        "nyywy",
        "Count bytes continuously rather than at the end of the session.",
    ),
    k("allbackups", "nywyy", "Balance over all backup servers, not only the first."),
    kd(
        "abortonclose",
        "nywyy",
        "Drop a queued HTTP request whose client has closed (`CQ--`, no answer); without it the request is served. As in haproxy 2.6, it acts only when the frontend has it too, which only a `defaults` section (or a `listen`) gives.",
        "Not watched: TCP mode, the connection phase, a request whose body is still unread; over `bind ... ssl` the close is not seen.",
    ),
    k("splice-auto", "nyyyy", "Let lbd choose when to use splice(2)."),
    k("splice-request", "nyyyy", "splice(2) client-to-server data."),
    k("splice-response", "nyyyy", "splice(2) server-to-client data."),
    k(
        "tcpka",
        "nyyyy",
        "TCP keep-alive probes: toward clients in a frontend, toward servers in a backend.",
    ),
    k("clitcpka", "nyywy", "TCP keep-alive toward clients."),
    k("srvtcpka", "nywyy", "TCP keep-alive toward servers."),
    kd(
        "http-buffer-request",
        "nyyyy",
        "Wait for the request body before choosing a server.",
        "Accepted; the body streams to the server as it comes (rules see the head only).",
    ),
    kd(
        "independent-streams",
        "nyyyy",
        "Read and write timeouts are kept per direction.",
        "Accepted; without effect.",
    ),
    k("persist", "nywyy", "Keep a persisted client on its server even when it is down."),
    kd(
        "prefer-last-server",
        "nywyy",
        "Reuse the server of the previous request on the connection.",
        "Accepted; a client connection's own server connection is kept only with `http-reuse never` or NTLM.",
    ),
    k(
        "nolinger",
        "nyyyy",
        "Close with a reset rather than linger: clients in a frontend, servers in a backend.",
    ),
    k(
        "tcp-smart-accept",
        "nyywy",
        "Acknowledge a client's first data with the answer, not an empty ACK; on by default in HTTP mode.",
    ),
    k(
        "tcp-smart-connect",
        "nywyy",
        "Send the handshake's last ACK with the first data (when lbd has data to send at once).",
    ),
    kd(
        "checkcache",
        "nywyy",
        "Block (502, `PH--`, an alert) a response a shared cache could keep with the cookie the server sets.",
        "The block answers 502, as HAProxy's manual says; haproxy 2.6 sends an error page under the server's own status (`200 Service ready` for a 200).",
    ),
    k("http-keep-alive", "nyyyy", "Keep connections open on both sides (the default)."),
    k(
        "http-server-close",
        "nyyyy",
        "Close the server side after each response; keep the client side.",
    ),
    k("httpclose", "nyyyy", "Close both sides after each response."),
    k(
        "forwardfor",
        "nyyyy",
        "Add `X-Forwarded-For` (`except NET`, `header NAME`, `if-none`).",
    ),
    k("originalto", "nyyyy", "Add `X-Original-To`."),
    k("httpchk", "nywyy", "HTTP health checks: `option httpchk [METHOD] [URI] [VERSION]`."),
    k("ssl-hello-chk", "nywyy", "Health check with a TLS hello."),
    k("tcp-check", "nywyy", "Scripted TCP health checks (`tcp-check ...`)."),
    k("smtpchk", "nywyy", "SMTP health checks."),
    k("mysql-check", "nywyy", "MySQL health checks."),
    k("ldap-check", "nywyy", "LDAP health checks."),
    k("redis-check", "nywyy", "Redis health checks."),
    k("http-ignore-probes", "nyywy", "Do not log or answer empty pre-connections."),
    kd(
        "http-no-delay",
        "nyyyy",
        "Send small HTTP messages at once.",
        "Accepted; lbd always sends at once (TCP_NODELAY).",
    ),
    kd(
        "http-pretend-keepalive",
        "nywyy",
        "In `http-server-close` and `httpclose` modes, do not send `Connection: close` to the server; the connection still closes after the response.",
        "After the response lbd closes the server connection itself, in both modes; haproxy 2.6 leaves that to the server (seen with a server that keeps it open).",
    ),
    kd(
        "accept-invalid-http-request",
        "nyywy",
        "Accept some invalid characters in requests.",
        "Accepted; hyper's parser stays strict.",
    ),
    kd(
        "accept-invalid-http-response",
        "nywyy",
        "Accept some invalid characters in responses.",
        "Accepted; hyper's parser stays strict.",
    ),
    kd(
        "socket-stats",
        "nyywy",
        "Statistics per listening socket.",
        "Accepted; statistics stay per frontend.",
    ),
    k("transparent", "nywyy", "Connect to the client's destination address."),
    k("http-use-htx", "nyyyy", "Accepted for compatibility (always on)."),
];

pub fn find(table: &'static [Keyword], name: &str) -> Option<&'static Keyword> {
    table.iter().find(|k| k.name == name)
}

fn section_list(kw: &Keyword, skip_global: bool) -> String {
    let names = ["global", "defaults", "frontend", "backend", "listen"];
    let kinds = [
        SectionKind::Global,
        SectionKind::Defaults,
        SectionKind::Frontend,
        SectionKind::Backend,
        SectionKind::Listen,
    ];
    let mut out = Vec::new();
    for (name, kind) in names.iter().zip(kinds) {
        if skip_global && kind == SectionKind::Global {
            continue;
        }
        match kw.verdict(kind) {
            Verdict::Yes => out.push(name.to_string()),
            Verdict::Ignored => out.push(format!("({name}: ignored, warning)")),
            Verdict::No => {}
        }
    }
    out.join(", ")
}

fn escape_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The keyword reference in Markdown, as committed in `lbd/docs/keywords.md`.
pub fn reference_markdown() -> String {
    let mut s = String::new();
    s.push_str("# lbd configuration keywords\n\n");
    s.push_str("Generated by `lbd --keywords-md` from `lbd/src/config/keywords.rs`; a test fails when this file is stale.\n\n");
    s.push_str("lbd reads HAProxy's configuration language. A keyword listed here is parsed and validated; one that is not listed is an error naming the file, line and keyword. ");
    s.push_str("Sections marked *ignored* accept the keyword with a warning because the proxy lacks the frontend or backend half, as HAProxy does.\n\n");
    s.push_str("Sections lbd does not implement yet (`userlist`, `peers`, `resolvers`, `mailers`, `program`, `http-errors`, `ring`, `cache`) are reported as errors.\n\n");
    for (title, table, skip_global) in [
        ("Global section", GLOBAL, false),
        ("Proxy sections", PROXY, true),
        ("Options (`option NAME`, `no option NAME`)", OPTIONS, true),
    ] {
        s.push_str(&format!(
            "## {title}\n\n| keyword | sections | what it does | difference from HAProxy |\n|---|---|---|---|\n"
        ));
        for kw in table {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                kw.name,
                section_list(kw, skip_global),
                escape_cell(kw.doc),
                escape_cell(kw.differs)
            ));
        }
        s.push('\n');
    }
    s.push_str(EXTRA_NOTES);
    s
}

const EXTRA_NOTES: &str = "## Notes\n\n\
- Server parameters: `weight` (0-256), `check`, `port`, `addr`, `inter`, `fastinter`, `downinter`, `rise`, `fall`, `observe layer4|layer7`, `error-limit`, `on-error fastinter|fail-check|sudden-death|mark-down`, `on-marked-down shutdown-sessions`, `on-marked-up shutdown-backup-sessions`, `backup`, `disabled`, `enabled`, `maxconn`, `minconn`, `maxqueue`, `id`, `cookie`, `send-proxy`, `send-proxy-v2`, `check-send-proxy`, `ssl`, `no-ssl`, `check-ssl`, `verify none|required`, `ca-file`, `crt`, `sni`, `alpn`, `init-addr`, `slowstart`, `resolve-prefer`, `resolvers`, `non-stick`, `redir`, `source`, `track`, `pool-max-conn`, `pool-purge-delay`, `tfo`, `agent-check`, `agent-port`, `agent-inter`, `no-check`, `no-backup`, `weight`.\n\
- `http-request` actions: `allow`, `deny [deny_status N]`, `tarpit`, `reject`, `auth [realm R]`, `redirect ...`, `add-header`, `set-header`, `del-header`, `replace-header`, `replace-value`, `set-path`, `set-query`, `set-uri`, `set-method`, `replace-path`, `set-var(NAME)`, `unset-var(NAME)`, `return [status N] [content-type T] [string S]`, `set-log-level`, `capture EXPR len N`, `track-sc0|1|2 EXPR [table T]`, `silent-drop`, `use-service prometheus-exporter`; `http-response` adds `set-status`.\n\
- `tcp-request connection|session|content` actions: `accept`, `reject`, `track-sc0|1|2`, `set-var(NAME)`, `expect-proxy layer4`, `silent-drop`, `close`.\n\
- Sample fetches for ACLs, `stick`, `balance hdr`: `src`, `dst`, `src_port`, `dst_port`, `nbsrv([backend])`, `be_conn`, `connslots`, `queue`, `always_true`, `always_false`, `ssl_fc`, `ssl_fc_sni`, `ssl_fc_protocol`, `ssl_fc_cipher`, `ssl_fc_alpn`, `req.ssl_sni`, `req.len`, `method`, `path`, `pathq`, `query`, `url`, `base`, `url_param`, `hdr(NAME)`, `req.hdr`, `hdr_cnt`, `hdr_ip`, `cook`, `status`, `res.hdr`, `var`, `str`, `int`, `env`, with the `_beg`, `_end`, `_sub`, `_reg`, `_dir`, `_dom`, `_len` ACL forms, flags `-i`, `-m METHOD`, `-n`, `--`, and converters `lower`, `upper`, `ipmask`, `hex`, `base64`, `crc32`, `djb2`, `sdbm`, `wt6`, `length`, `field`, `word`, `regsub`, `map*`.\n\
- Addresses: `10.0.16` means 10.0.0.16 (the C library's forms); IPv6 in brackets or with the port after the last colon; `*`, `0.0.0.0`, `::`; port ranges and comma lists on `bind`; UNIX paths under `unix-bind prefix`; a server without a port connects to the port the client connected to.\n\
- Implicit global: the LB Layer7 tab has no `global`; lbd behaves as if it read `log /dev/log local0`, `stats socket /run/lbd/lbd.sock mode 600 level admin` and `unix-bind prefix /run/lbd`. A pasted `global` overrides these key by key.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_string_has_five_letters() {
        for kw in GLOBAL.iter().chain(PROXY).chain(OPTIONS) {
            assert_eq!(kw.sections.len(), 5, "{}", kw.name);
        }
    }

    #[test]
    fn committed_reference_is_current() {
        let committed = include_str!("../../docs/keywords.md");
        assert!(
            committed == reference_markdown(),
            "lbd/docs/keywords.md is stale: run `cargo run -p lbd -- --keywords-md > lbd/docs/keywords.md`"
        );
    }
}
