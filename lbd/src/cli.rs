//! The command line, compatible with the HAProxy flags that scripts and test
//! harnesses use: `-c`, `-f FILE|DIR` (repeatable), `-d`, `-db`, `-p PIDFILE`,
//! `-V`, `-q`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{self, Severity};

/// The default configuration built into lbd, used by `scripts/run` and when no
/// `-f` is given.
pub const EMBEDDED_CONFIG: &str = include_str!("../embedded/default.cfg");

#[derive(Parser, Debug)]
#[command(
    name = "lbd",
    about = "The appliance's load-balancer daemon (HAProxy configuration language)",
    disable_version_flag = true
)]
pub struct Args {
    /// Configuration file or directory (its *.cfg files in lexical order); repeatable.
    #[arg(short = 'f', value_name = "FILE|DIR")]
    pub files: Vec<PathBuf>,
    /// Check the configuration and exit: 0 when valid, 1 when not.
    #[arg(short = 'c')]
    pub check: bool,
    /// SSL tab file (stunnel-style service blocks).
    #[arg(short = 's', value_name = "FILE")]
    pub ssl: Option<PathBuf>,
    /// Debug mode: stay in the foreground and log to stderr.
    #[arg(short = 'd')]
    pub debug: bool,
    /// With -d (`-db`): foreground, no background mode (lbd never daemonises).
    #[arg(short = 'b', hide = true)]
    pub background_off: bool,
    /// Write the process id to this file.
    #[arg(short = 'p', value_name = "PIDFILE")]
    pub pidfile: Option<PathBuf>,
    /// Verbose: print warnings and the summary even with -q.
    #[arg(short = 'V')]
    pub verbose: bool,
    /// Quiet: print nothing but errors.
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Once listening, ask these processes to finish their connections and exit
    /// (SIGUSR1): HAProxy's `-sf PID...`, for a new process taking over.
    #[arg(long = "sf", value_name = "PID", num_args = 1.., hide = true)]
    pub soft_stop: Vec<i32>,
    /// Once listening, stop these processes now (SIGTERM): HAProxy's `-st PID...`.
    #[arg(long = "st", value_name = "PID", num_args = 1.., hide = true)]
    pub hard_stop: Vec<i32>,
    /// Print the keyword reference (lbd/docs/keywords.md) and exit.
    #[arg(long = "keywords-md", hide = true)]
    pub keywords_md: bool,
}

/// HAProxy writes `-sf PID` and `-st PID` as single-dash words; they become
/// `--sf` / `--st` before parsing (`-s` alone is the SSL tab file).
pub fn haproxy_argv(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .map(|a| match a.as_str() {
            "-sf" => "--sf".to_owned(),
            "-st" => "--st".to_owned(),
            _ => a,
        })
        .collect()
}

pub fn run(args: Args) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    if args.version {
        let _ = writeln!(out, "lbd version {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if args.keywords_md {
        let _ = write!(out, "{}", config::keywords::reference_markdown());
        return ExitCode::SUCCESS;
    }
    let checked = config::check_all(&args.files, args.ssl.as_deref());
    let pid = std::process::id();
    for d in &checked.diags.items {
        if d.severity == Severity::Warning && args.quiet && !args.verbose {
            continue;
        }
        let _ = writeln!(err, "{}", d.haproxy_line(pid));
    }
    if !checked.is_valid() {
        // Name the files that hold errors, in the order they were read.
        let names: Vec<String> = checked
            .files
            .iter()
            .chain(args.ssl.iter())
            .map(|f| f.display().to_string())
            .filter(|name| checked.diags.errors().any(|d| &*d.loc.file == name.as_str()))
            .collect();
        if !names.is_empty() {
            let _ = writeln!(
                err,
                "[ALERT]    ({pid}) : config : Error(s) found in configuration file : {}",
                names.join(", ")
            );
        }
        let _ = writeln!(err, "[ALERT]    ({pid}) : config : Fatal errors found in configuration.");
        return ExitCode::from(1);
    }
    if args.check {
        if !args.quiet || args.verbose {
            if checked.diags.warnings().next().is_some() {
                let _ = writeln!(err, "Warnings were found.");
            }
            let _ = writeln!(out, "Configuration file is valid");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(pidfile) = &args.pidfile {
        if let Err(e) = std::fs::write(pidfile, format!("{pid}\n")) {
            let _ = writeln!(err, "[ALERT]    ({pid}) : cannot write pid file {} : {e}", pidfile.display());
            return ExitCode::from(1);
        }
    }
    let Some(config) = checked.config else { return ExitCode::from(1) };
    drop(out);
    drop(err);
    let files = crate::config::expand_paths(&args.files).unwrap_or_default();
    let takeover = crate::runtime::Takeover {
        soft: args.soft_stop.clone(),
        hard: args.hard_stop.clone(),
    };
    match crate::runtime::run(config, files, args.ssl.clone(), takeover) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("[ALERT]    ({pid}) : {e}");
            ExitCode::from(1)
        }
    }
}
