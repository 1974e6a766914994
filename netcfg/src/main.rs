//! `netcfg [-c FILE] check|plan|apply|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netcfg::{live, model, plan, show};

#[derive(Parser)]
#[command(name = "netcfg", about = "The appliance's network configuration, applied over rtnetlink")]
struct Args {
    /// The network file.
    #[arg(short = 'c', value_name = "FILE", default_value = "/config/network.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Validate the file against the live interfaces; change nothing.
    Check,
    /// Print the changes `apply` would make.
    Plan,
    /// Make exactly the planned changes (undone if one fails).
    Apply,
    /// Print the live state as a network file.
    Show,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netcfg: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let (conn, handle, _) = match rtnetlink::new_connection() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netcfg: cannot open rtnetlink: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::spawn(conn);
    let live = match live::read(&handle).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("netcfg: cannot read the network state: {e}");
            return ExitCode::from(2);
        }
    };
    if let Cmd::Show = args.command {
        print!("{}", show::show(&live));
        return ExitCode::SUCCESS;
    }
    let file = args.config.display().to_string();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("netcfg: {file}: {e}");
            return ExitCode::from(1);
        }
    };
    let parsed = match model::parse(&text) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("netcfg: {file}: {e}");
            eprintln!("netcfg: nothing was changed");
            return ExitCode::from(1);
        }
    };
    let want = match model::resolve(&text, &parsed, &live) {
        Ok(d) => d,
        Err(errors) => {
            for e in errors {
                eprintln!("netcfg: {file}: {e}");
            }
            eprintln!("netcfg: nothing was changed");
            return ExitCode::from(1);
        }
    };
    let conflicts = plan::conflicts(&want, &live);
    if !conflicts.is_empty() {
        for c in conflicts {
            eprintln!("netcfg: {file}: {c}");
        }
        eprintln!("netcfg: nothing was changed");
        return ExitCode::from(1);
    }
    let steps = plan::plan(&want, &live);
    match args.command {
        Cmd::Check => {
            println!("{file}: valid ({} change(s) to apply)", steps.len());
            ExitCode::SUCCESS
        }
        Cmd::Plan => {
            if steps.is_empty() {
                println!("no change");
            }
            for (i, s) in steps.iter().enumerate() {
                println!("{:>3}. {s}", i + 1);
            }
            ExitCode::SUCCESS
        }
        Cmd::Apply => {
            if steps.is_empty() {
                println!("no change");
                return ExitCode::SUCCESS;
            }
            match plan::apply(&handle, &steps).await {
                Ok(()) => {
                    for (i, s) in steps.iter().enumerate() {
                        println!("{:>3}. {s}", i + 1);
                    }
                    println!("applied {} change(s)", steps.len());
                    ExitCode::SUCCESS
                }
                Err(f) => {
                    eprintln!("netcfg: {f}");
                    ExitCode::from(1)
                }
            }
        }
        Cmd::Show => ExitCode::SUCCESS,
    }
}
