//! Property test on the stable toolchain: random and mutated configurations never
//! make the checker panic (the fuzz target in fuzz/ does the same, coverage-guided).

use lbd::config::{check_sources, Source};
use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../../tests/corpus/001-seed-exchange-nossl.cfg"),
    include_str!("../../tests/corpus/002-seed-exchange-ssl.cfg"),
    include_str!("../../tests/corpus/025-valid-acl-anonymous-and-logic.cfg"),
    include_str!("../../tests/corpus/040-valid-http-request-actions.cfg"),
    include_str!("../../tests/corpus/059-tok-escaped-space-hash-backslash.cfg"),
];

/// Words that steer random lines into the parser's deeper paths.
const WORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "bind",
    "server",
    "option",
    "no",
    "timeout",
    "acl",
    "use_backend",
    "default_backend",
    "if",
    "unless",
    "{",
    "}",
    "!",
    "or",
    "||",
    "stick",
    "stick-table",
    "http-request",
    "redirect",
    "monitor",
    "fail",
    "cookie",
    "balance",
    "mode",
    "http",
    "tcp",
    "check",
    "port",
    "addr",
    "inter",
    "10.0.0.1:80",
    ":80",
    "[::1]:80",
    "/ssl:web",
    "10.0.16",
    "src",
    "path_beg",
    "hdr(host)",
    "nbsrv(b)",
    "lt",
    "3",
    "5s",
    "\"",
    "'",
    "\\",
    "\\x4",
    "${X}",
    "\"${X-1}\"",
    "#",
    "-i",
    "-m",
    "table",
    "type",
    "size",
    "1k",
];

fn check(text: &str) {
    let env = |name: &str| if name == "X" { Some("1".to_owned()) } else { None };
    let src = [Source {
        name: "fuzz.cfg".into(),
        text: text.to_owned(),
    }];
    let checked = check_sources(&src, &env);
    // Either a model or at least one error: never both, never neither.
    assert_eq!(checked.config.is_some(), !checked.diags.has_errors());
}

fn random_line() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 0..8).prop_map(|w| w.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_keyword_soup(lines in prop::collection::vec(random_line(), 0..30)) {
        check(&lines.join("\n"));
    }

    #[test]
    fn arbitrary_text(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn mutated_seeds(seed in 0..SEEDS.len(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..12)) {
        let mut bytes = SEEDS[seed].as_bytes().to_vec();
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        check(&String::from_utf8_lossy(&bytes));
    }
}
