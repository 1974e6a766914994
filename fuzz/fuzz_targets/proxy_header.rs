//! Coverage-guided fuzzing of the PROXY protocol decoder (`bind ... accept-proxy`):
//! any bytes give a header or an error, never a panic or a hang; a decoded
//! header never claims more bytes than it was given. `cargo +nightly fuzz run
//! proxy_header` (the stable property test is lbd/tests/ssltab_props.rs).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use lbd::runtime::proxy_proto;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    if let Ok(got) = rt.block_on(proxy_proto::read_header(&mut &data[..], Duration::from_millis(20))) {
        assert!(got.rest.len() < data.len().max(1));
        assert!(data.ends_with(&got.rest));
    }
});
