//! `netcfg [-c FILE] check|plan|apply|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netcfg::{live, model, plan, show, vrrp};

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
        // The file, when there is one, says where netcfg's run files are and which VRRP instances to report.
        let file = std::fs::read_to_string(&args.config).ok().and_then(|t| model::parse(&t).ok());
        let keepalived = file.as_ref().and_then(|f| f.keepalived.clone()).unwrap_or_default();
        print!("{}", show::show(&live, &keepalived.run_dir));
        if let Some(f) = &file {
            let list: Vec<vrrp::Instance> = f.vrrp.iter().map(|i| i.get_ref().clone()).collect();
            for (name, state) in vrrp::states(&list, &keepalived) {
                println!("# vrrp {name}: {state}");
            }
        }
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
            let vrrp_change = vrrp_differs(&want);
            if steps.is_empty() && !vrrp_change {
                println!("no change");
            }
            for (i, s) in steps.iter().enumerate() {
                println!("{:>3}. {s}", i + 1);
            }
            if vrrp_change {
                println!("  *. write {} and reload keepalived", want.keepalived.config.display());
            }
            ExitCode::SUCCESS
        }
        Cmd::Apply => {
            if !steps.is_empty() {
                if let Err(f) = plan::apply(&handle, &steps).await {
                    eprintln!("netcfg: {f}");
                    return ExitCode::from(1);
                }
                for (i, s) in steps.iter().enumerate() {
                    println!("{:>3}. {s}", i + 1);
                }
            }
            let mut changes = steps.len();
            if want.vrrp.is_empty() {
                // No instance left: the keepalived netcfg started goes, with its VIPs.
                if let Some(what) = vrrp::stop(&want.keepalived) {
                    println!("  *. {what}");
                    changes += 1;
                }
            } else {
                match vrrp::apply(&want.vrrp, &want.keepalived) {
                    Ok(Some(what)) => {
                        println!("  *. {what}");
                        changes += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("netcfg: VRRP: {e}");
                        let left = plan::undo_all(&handle, &steps).await;
                        eprintln!("netcfg: the {} step(s) before it were undone", steps.len());
                        for l in left {
                            eprintln!("  could not undo: {l}");
                        }
                        return ExitCode::from(1);
                    }
                }
            }
            if changes == 0 {
                println!("no change");
            } else {
                println!("applied {changes} change(s)");
            }
            ExitCode::SUCCESS
        }
        Cmd::Show => ExitCode::SUCCESS,
    }
}

/// Whether the keepalived configuration on disk differs from the file's instances.
fn vrrp_differs(want: &model::Desired) -> bool {
    if want.vrrp.is_empty() {
        return false;
    }
    let text = vrrp::render(&want.vrrp, &want.keepalived);
    std::fs::read_to_string(&want.keepalived.config).ok().as_deref() != Some(text.as_str())
}
