use std::process::ExitCode;

use clap::Parser;

/// The daemon makes many small, short-lived allocations (config lines, buffers);
/// mimalloc handles them with less fragmentation than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = lbd::cli::Args::parse_from(lbd::cli::haproxy_argv(std::env::args()));
    lbd::cli::run(args)
}
