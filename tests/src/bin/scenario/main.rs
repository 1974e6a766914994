//! `scenario exchange [--ssl] [--proxy lbd|haproxy|PATH] [--out FILE]`: the seed's
//! Exchange 2010 deployment, end to end, in network namespaces this program
//! makes and removes (`xch-*`). One run starts the topology, the CAS servers and
//! the proxy (lbd, or Debian's haproxy with stunnel playing the SSL tab), runs
//! every case in order, prints a table of outcomes and exits non-zero when a
//! case failed. Only one scenario runs at a time on a machine.

mod cases;
mod clients;
mod world;

use std::process::ExitCode;
use std::time::Instant;

use world::{Flavor, Source, Variant};

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C, `timeout`, a closed terminal) end the
/// run after removing what it made: the namespaces with every process left in
/// them, and this process's scratch folders. The signals are blocked in every
/// thread and taken by one that waits for them (children get a clean mask).
fn on_signal_clean_up() {
    // SAFETY: plain signal-set manipulation on local values, before any other thread exists.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: `set` is a valid signal set; `sig` receives the signal number.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        eprintln!("scenario: signal {sig}: cleaning up");
        world::cleanup_leftovers();
        let mine = format!("-{}-", std::process::id());
        if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("lbd-e2e-") && name.contains(&mine) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::process::exit(128 + sig);
    });
}

fn usage() -> ExitCode {
    eprintln!("usage: scenario exchange [--ssl] [--proxy lbd|haproxy|PATH] [--config fixtures|wizard] [--out FILE] [--only SUBSTRING]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("exchange") {
        return usage();
    }
    let mut variant = Variant::NoSsl;
    let mut flavor = Flavor::Lbd(None);
    let mut out = None;
    let mut only = None;
    let mut source = Source::Fixtures;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => match it.next().map(String::as_str) {
                Some("fixtures") => source = Source::Fixtures,
                Some("wizard") => source = Source::Wizard,
                _ => return usage(),
            },
            "--ssl" => variant = Variant::Ssl,
            "--proxy" => match it.next().map(String::as_str) {
                Some("lbd") => flavor = Flavor::Lbd(None),
                Some("haproxy") => flavor = Flavor::Haproxy(None),
                // A path: an haproxy binary when its name says so, else an lbd.
                Some(p) if std::path::Path::new(p).is_file() => {
                    let name = std::path::Path::new(p)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    flavor = if name.starts_with("haproxy") {
                        Flavor::Haproxy(Some(p.into()))
                    } else {
                        Flavor::Lbd(Some(p.into()))
                    };
                }
                _ => return usage(),
            },
            "--out" => match it.next() {
                Some(f) => out = Some(f.clone()),
                None => return usage(),
            },
            "--only" => match it.next() {
                Some(f) => only = Some(f.clone()),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("scenario: needs root (network namespaces, mounts)");
        return ExitCode::from(2);
    }
    e2e::raise_fd_limit(4096);
    on_signal_clean_up();
    let started = Instant::now();
    let title = match source {
        Source::Fixtures => format!("exchange {} with {}", variant.word(), flavor.word()),
        Source::Wizard => format!(
            "exchange {} with {}, configured by the Templates page's wizard",
            variant.word_wizard(),
            flavor.word()
        ),
    };
    println!("== scenario {title}: setting up");
    let results = match std::panic::catch_unwind(|| {
        let world = world::World::start(variant, flavor.clone(), source);
        println!("== setup took {:.1} s", started.elapsed().as_secs_f64());
        cases::run_all(&world, only.as_deref())
    }) {
        Ok(r) => r,
        Err(_) => {
            eprintln!("scenario {title}: setup failed (see above); everything it made was removed");
            world::cleanup_leftovers();
            return ExitCode::FAILURE;
        }
    };
    world::cleanup_leftovers();
    if results.is_empty() {
        eprintln!("scenario {title}: no case matches --only");
        return ExitCode::from(2);
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let table = cases::table(&title, &results, started.elapsed());
    println!("{table}");
    if let Some(f) = out {
        if let Err(e) = std::fs::write(&f, &table) {
            eprintln!("scenario: cannot write {f}: {e}");
        }
    }
    if failed > 0 {
        eprintln!("scenario {title}: {failed} of {} cases failed", results.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
