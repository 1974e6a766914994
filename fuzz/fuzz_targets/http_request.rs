//! Coverage-guided fuzzing of lbd's HTTP request path: framing decisions,
//! header rules, cookies and stickiness, with a real server behind lbd.
//! `cargo +nightly fuzz run http_request` (the stable property test is
//! lbd/tests/http_no_panic.rs).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use lbd::runtime::http::probe::Probe;
use libfuzzer_sys::fuzz_target;

/// The property test's configuration (lbd/tests/http_no_panic.rs), shared.
const CONFIG: &str = include_str!("../../lbd/tests/data/http_probe.cfg");

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
