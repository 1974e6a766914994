//! Coverage-guided fuzzing of lbd's HTTP request path: framing decisions,
//! header rules, cookies and stickiness, with a real server behind lbd.
//! `cargo +nightly fuzz run http_request` (the stable property test is
//! lbd/tests/http_no_panic.rs).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use lbd::runtime::http::probe::Probe;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = "\
defaults
  mode http
  timeout client 2s
  timeout server 2s
  timeout connect 1s
  timeout http-request 1s
frontend ft
  bind 127.0.0.1:1
  option forwardfor
  http-request set-header X-Path %[path]
  http-request deny if { path_beg -i /admin }
  redirect location /owa if { path / }
  use_backend bk_sticky if { path_beg -i /microsoft-server-activesync }
  default_backend bk_cookie
backend bk_cookie
  cookie SERVERID insert indirect nocache
  server s1 BACKEND cookie s1
  server s2 BACKEND cookie s2
backend bk_sticky
  stick-table type string len 64 size 1k expire 1m
  stick on hdr(Authorization)
  server s1 BACKEND
  server s2 BACKEND
";

struct Shared(Probe);
// SAFETY: libFuzzer calls the target from one thread only, so the probe is never shared.
unsafe impl Sync for Shared {}

fuzz_target!(|data: &[u8]| {
    static PROBE: OnceLock<Option<Shared>> = OnceLock::new();
    let Some(Shared(probe)) = PROBE.get_or_init(|| Probe::new(CONFIG).ok().map(Shared)) else {
        return;
    };
    let ex = probe.exchange(data, Duration::from_secs(5));
    assert!(!ex.panicked && !ex.hung);
    assert_eq!(probe.server_parse_errors.load(std::sync::atomic::Ordering::Relaxed), 0);
});
