//! Prints a generated configuration: `gen_config BACKENDS SERVERS` (used by scripts/bench).

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().unwrap_or(0));
    let backends = args.next().unwrap_or(1000);
    let servers = args.next().unwrap_or(10);
    print!("{}", lbd::config::generate::backends_config(backends, servers));
}
