//! Property tests (stable toolchain) for the SSL tab's parser and the PROXY
//! protocol decoder: any input is refused or accepted without a panic, an
//! accepted SSL tab always becomes a valid configuration, and PROXY headers
//! round-trip with the bytes that follow them. The coverage-guided versions are
//! fuzz/fuzz_targets/ssl_tab.rs and proxy_header.rs.

use std::time::Duration;

use lbd::config::diag::Diagnostics;
use lbd::config::model::ProxyVersion;
use lbd::config::ssltab;
use lbd::runtime::proxy_proto;
use proptest::prelude::*;

const CRT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/crt.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/key.pem");

/// Lines an SSL tab is made of: good ones, near misses and garbage.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[svc]".to_owned()),
        "\\[[a-z_]{1,6}\\]",
        Just("client = no".to_owned()),
        Just("client = yes".to_owned()),
        (1u16..4).prop_map(|n| format!("accept = 127.0.0.1:{}", 20000 + n)),
        Just("accept = 443".to_owned()),
        Just("connect = 127.0.0.1:8080".to_owned()),
        Just("connect = /ssl:web".to_owned()),
        Just(format!("cert = {CRT}")),
        Just(format!("key = {KEY}")),
        Just("cert = /nonexistent.pem".to_owned()),
        Just("sendproxy = yes".to_owned()),
        Just("sendproxy = v2".to_owned()),
        Just("protocol = proxy".to_owned()),
        Just("sni = svc:*.example".to_owned()),
        Just("sni = backend.example".to_owned()),
        Just("verify = 2".to_owned()),
        Just("verifyChain = yes".to_owned()),
        Just(format!("CAfile = {CRT}")),
        Just("sslVersionMin = TLSv1.2".to_owned()),
        Just("sslVersionMax = TLSv1.3".to_owned()),
        Just("ciphers = HIGH:!aNULL".to_owned()),
        Just("curves = X25519:P-256".to_owned()),
        Just("TIMEOUTidle = 60".to_owned()),
        Just("TIMEOUTbusy = x".to_owned()),
        Just("; comment".to_owned()),
        Just("# comment".to_owned()),
        Just("foreground = yes".to_owned()),
        "[a-zA-Z]{1,8} ?= ?[ -~]{0,12}",
        "[ -~]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn ssl_tab_never_panics_and_what_it_accepts_is_a_valid_configuration(lines in prop::collection::vec(line(), 0..24)) {
        let text = lines.join("\n");
        let mut diags = Diagnostics::default();
        if let Some(tab) = ssltab::parse("ssl.cfg", &text, &mut diags) {
            let generated = ssltab::generate(&tab, Some("/run/lbd"));
            let checked = lbd::config::check_str("generated", &generated);
            prop_assert!(checked.is_valid(), "{text}\n---\n{generated}\n---\n{:?}", checked.diags.items);
        } else {
            // Every refusal names a line of the SSL tab.
            prop_assert!(diags.errors().all(|d| &*d.loc.file == "ssl.cfg"), "{:?}", diags.items);
            prop_assert!(diags.errors().next().is_some());
        }
    }

    #[test]
    fn proxy_decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _ = rt.block_on(proxy_proto::read_header(&mut &bytes[..], Duration::from_millis(50)));
    }

    #[test]
    fn proxy_decoder_mutated_headers_never_panic(v2 in any::<bool>(), at in 0usize..64, byte in any::<u8>(), cut in 0usize..64) {
        let version = if v2 { ProxyVersion::V2 } else { ProxyVersion::V1 };
        let mut h = proxy_proto::header(version, "10.1.2.3:4000".parse().ok(), "10.0.0.17:443".parse().ok());
        if at < h.len() {
            h[at] = byte;
        }
        h.truncate(h.len().saturating_sub(cut % 8));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _ = rt.block_on(proxy_proto::read_header(&mut &h[..], Duration::from_millis(50)));
    }

    #[test]
    fn proxy_headers_round_trip(
        v2 in any::<bool>(),
        v6 in any::<bool>(),
        a in any::<[u8; 16]>(),
        b in any::<[u8; 16]>(),
        sp in any::<u16>(),
        dp in any::<u16>(),
        rest in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let (src, dst): (std::net::SocketAddr, std::net::SocketAddr) = if v6 {
            ((std::net::Ipv6Addr::from(a), sp).into(), (std::net::Ipv6Addr::from(b), dp).into())
        } else {
            (
                (std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]), sp).into(),
                (std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]), dp).into(),
            )
        };
        let version = if v2 { ProxyVersion::V2 } else { ProxyVersion::V1 };
        let mut bytes = proxy_proto::header(version, Some(src), Some(dst));
        bytes.extend_from_slice(&rest);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let got = rt.block_on(proxy_proto::read_header(&mut &bytes[..], Duration::from_millis(200))).expect("decoded");
        prop_assert_eq!(got.src, Some(src));
        prop_assert_eq!(got.dst, Some(dst));
        prop_assert_eq!(got.rest, rest);
    }
}
