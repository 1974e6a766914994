//! Parse and validate a generated configuration of 1,000 backends with 10
//! servers each (the target: under 50 ms on one core).

use criterion::{criterion_group, criterion_main, Criterion};
use lbd::config::check_str;

/// The same allocator as the lbd binary, so the figure is what the daemon sees.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    let text = lbd::config::generate::backends_config(1000, 10);
    assert!(check_str("gen.cfg", &text).is_valid(), "the generated config must be valid");
    let mut group = c.benchmark_group("config");
    group.sample_size(20);
    group.bench_function("check_1000_backends_x_10_servers", |b| b.iter(|| check_str("gen.cfg", &text)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
