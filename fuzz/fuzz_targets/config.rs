//! Tokenizer + parser + validation on arbitrary bytes: must never panic, and
//! must return either a model or at least one error.
#![no_main]

use lbd::config::{check_sources, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let env = |name: &str| if name == "HOME" { Some("/root".to_owned()) } else { None };
    let checked = check_sources(&[Source { name: "fuzz.cfg".into(), text }], &env);
    assert_eq!(checked.config.is_some(), !checked.diags.has_errors());
});
