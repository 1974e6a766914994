//! Coverage-guided fuzzing of the SSL tab's parser: any text is refused with
//! messages naming the SSL tab, or accepted and turned into a configuration
//! that lbd's own checker accepts. `cargo +nightly fuzz run ssl_tab` (the
//! stable property test is lbd/tests/ssltab_props.rs).
#![no_main]

use lbd::config::diag::Diagnostics;
use lbd::config::ssltab;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut diags = Diagnostics::default();
    match ssltab::parse("ssl.cfg", &text, &mut diags) {
        Some(tab) => {
            let generated = ssltab::generate(&tab, Some("/run/lbd"));
            assert!(lbd::config::check_str("generated", &generated).is_valid(), "{generated}");
        }
        None => assert!(diags.errors().all(|d| &*d.loc.file == "ssl.cfg")),
    }
});
