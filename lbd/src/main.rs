use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = lbd::cli::Args::parse();
    lbd::cli::run(args)
}
