//! `webui`: the appliance's GUI over HTTPS (port 4444 by default).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "The appliance's browser GUI (HTTPS)")]
struct Args {
    /// Address and port to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:4444")]
    listen: std::net::SocketAddr,
    /// The GUI's state: database, certificate, first password.
    #[arg(long, default_value = "/config/webui")]
    state_dir: PathBuf,
    /// A file lbd reads before the LB Layer7 file (lbd -f, in order; repeatable):
    /// the box's own global section. The GUI never writes it.
    #[arg(long = "base")]
    base: Vec<PathBuf>,
    /// The LB Layer7 file lbd reads (lbd -f).
    #[arg(long, default_value = "/config/lb7.cfg")]
    lb7: PathBuf,
    /// The SSL tab's file lbd reads (lbd -s).
    #[arg(long, default_value = "/config/ssl.cfg")]
    ssl: PathBuf,
    /// The SSL tab's certificate store (one folder per name).
    #[arg(long, default_value = "/etc/ssl/frontends")]
    cert_store: PathBuf,
    /// lbd's runtime socket.
    #[arg(long, default_value = "/run/lbd/lbd.sock")]
    socket: PathBuf,
    /// The syslog file holding lbd's log lines (the Logs tab).
    #[arg(long, default_value = "/var/log/messages")]
    log_file: PathBuf,
    /// The Logs tab shows only the lines holding this: lbd's syslog tag (empty: every line).
    #[arg(long, default_value = "lbd")]
    log_match: String,
    /// netcfg's network file (the Setup tab).
    #[arg(long, default_value = "/config/network.toml")]
    network: PathBuf,
    /// The netcfg program.
    #[arg(long, default_value = "netcfg")]
    netcfg: PathBuf,
    /// Seconds after which an unused session ends.
    #[arg(long, default_value_t = 900)]
    session_idle: u64,
    /// The box's name in the page header (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// A folder of extra deployment templates (one `*.toml` each) for the
    /// Templates page, beside the built-in ones.
    #[arg(long, default_value = "/usr/share/lbd/templates")]
    templates: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let box_name = args.name.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "lbd".into())
    });
    let opts = webui::server::Options {
        listen: args.listen,
        state_dir: args.state_dir,
        paths: webui::config::Paths {
            base: args.base,
            lb7: args.lb7,
            ssl: args.ssl,
            socket: args.socket,
            cert_store: args.cert_store,
        },
        box_name,
        log_file: args.log_file,
        log_match: args.log_match,
        session_idle: std::time::Duration::from_secs(args.session_idle.max(1)),
        network_file: args.network,
        netcfg: args.netcfg,
        templates_dir: Some(args.templates),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webui: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(webui::server::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webui: {e}");
            ExitCode::FAILURE
        }
    }
}
