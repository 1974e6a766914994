//! Coverage-guided fuzzing of the PROXY protocol decoder (`bind ... accept-proxy`):
//! any bytes give a header or an error, never a panic or a hang; a decoded
//! header hands back only bytes that followed it in the input. `cargo +nightly fuzz run
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
        // The decoder reads in chunks: `rest` is what followed the header in the
        // chunks it read, so a contiguous run of the input after at least the
        // 15 bytes of the shortest header.
        assert!(got.rest.len() + 15 <= data.len());
        assert!(got.rest.is_empty() || data[15..].windows(got.rest.len()).any(|w| w == got.rest.as_slice()));
    }
});
