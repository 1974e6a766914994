//! Property test on the stable toolchain for the HTTP request path (the fuzz
//! target `http_request` in fuzz/ does the same, coverage-guided): arbitrary and
//! mutated requests, through the full rule set of a frontend and a backend with
//! cookies, stickiness and header rewriting, never make lbd panic or hang, every
//! answer is a well-formed HTTP/1.1 response, and the server behind lbd never
//! receives a request it cannot parse.

use std::time::Duration;

use lbd::runtime::http::probe::Probe;
use proptest::prelude::*;

/// The configuration the probe serves (shared with the fuzz target); `BACKEND`
/// stands for the probe's own server.
const CONFIG: &str = include_str!("data/http_probe.cfg");

/// Requests the mutations start from: plain, bodies, smuggling shapes.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /owa/x?y=1 HTTP/1.1\r\nHost: old.example.com\r\nCookie: SERVERID=s2; a=b\r\n\r\n",
    b"POST /ews HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /ews HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /Microsoft-Server-ActiveSync HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTE6cA==\r\n\r\nGET /ping HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"GET /admin HTTP/1.0\r\nUser-Agent: a bot b\r\nX-Secret: s\r\n\r\n",
];

/// Fragments that steer mutations toward framing decisions.
const FRAGMENTS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b": ",
    b" ",
    b"\t",
    b"Content-Length: 3\r\n",
    b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: xchunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"ffffffffffffffffff\r\n",
    b"0\r\n\r\n",
    b"HTTP/1.0",
    b"\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
];

fn mutate(seed: &[u8], ops: &[(u8, u16, u8)]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(op, pos, arg) in ops {
        let at = if v.is_empty() { 0 } else { usize::from(pos) % (v.len() + 1) };
        match op % 4 {
            0 => {
                let f = FRAGMENTS[usize::from(arg) % FRAGMENTS.len()];
                v.splice(at..at, f.iter().copied());
            }
            1 if at < v.len() => v[at] = arg,
            2 if at < v.len() => {
                v.remove(at);
            }
            _ => v.truncate(at.max(1)),
        }
    }
    v
}

fn check(probe: &Probe, input: &[u8]) -> Result<(), TestCaseError> {
    let ex = probe.exchange(input, Duration::from_secs(5));
    prop_assert!(!ex.panicked, "lbd panicked on {:?}", String::from_utf8_lossy(input));
    prop_assert!(!ex.hung, "lbd hung on {:?}", String::from_utf8_lossy(input));
    if !ex.output.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp.parse(&ex.output);
        prop_assert!(
            matches!(parsed, Ok(httparse::Status::Complete(_))),
            "unparseable answer {:?} to {:?}",
            String::from_utf8_lossy(&ex.output),
            String::from_utf8_lossy(input)
        );
    }
    prop_assert_eq!(
        probe.server_parse_errors.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the server got a request it could not parse, from {:?}",
        String::from_utf8_lossy(input)
    );
    Ok(())
}

#[test]
fn seeds_are_answered() {
    let probe = Probe::new(CONFIG).expect("probe config");
    for seed in SEEDS {
        let ex = probe.exchange(seed, Duration::from_secs(5));
        assert!(
            ex.output.starts_with(b"HTTP/1."),
            "{:?} -> {:?}",
            String::from_utf8_lossy(seed),
            String::from_utf8_lossy(&ex.output)
        );
    }
    assert!(probe.server_requests.load(std::sync::atomic::Ordering::Relaxed) >= 4);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_requests(seed in 0..SEEDS.len(), ops in proptest::collection::vec((any::<u8>(), any::<u16>(), any::<u8>()), 0..8)) {
        thread_local! {
            static PROBE: Probe = Probe::new(CONFIG).expect("probe config");
        }
        let input = mutate(SEEDS[seed], &ops);
        PROBE.with(|p| check(p, &input))?;
    }

    #[test]
    fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        thread_local! {
            static PROBE: Probe = Probe::new(CONFIG).expect("probe config");
        }
        PROBE.with(|p| check(p, &input))?;
    }
}
