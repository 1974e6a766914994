//! lbd -c against Debian's haproxy -c on every config of tests/corpus: both must
//! agree on valid or invalid, and when haproxy's first alert names a line, lbd's
//! first alert must name the same one. The corpus headers record haproxy 2.6's
//! verdict; they are checked against the live haproxy too, so a drifting corpus
//! or a different haproxy fails loudly instead of silently passing.

use std::path::Path;
use std::process::Command;

use e2e::{corpus_dir, first_alert_line, lbd_bin, run};

struct Verdict {
    valid: bool,
    line: Option<usize>,
}

fn haproxy(file: &Path) -> Verdict {
    let out = run(Command::new("haproxy").arg("-c").arg("-f").arg(file));
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Verdict {
        valid: out.status.code() == Some(0),
        line: first_alert_line(&text),
    }
}

fn lbd(file: &Path) -> Verdict {
    let out = run(Command::new(lbd_bin()).arg("-c").arg("-f").arg(file));
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    Verdict {
        valid: out.status.code() == Some(0),
        line: first_alert_line(&text),
    }
}

/// `# expect: valid` or `# expect: invalid line N` on the first line.
fn annotation(file: &Path) -> (bool, usize) {
    let text = std::fs::read_to_string(file).expect("corpus file");
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    let spec = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: no '# expect:' header", file.display()));
    if spec == "valid" {
        return (true, 0);
    }
    let n = spec
        .strip_prefix("invalid line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}: bad header '{spec}'", file.display()));
    (false, n)
}

#[test]
fn lbd_agrees_with_haproxy_on_every_corpus_config() {
    let haproxy_ok = Command::new("haproxy")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        haproxy_ok,
        "Debian's haproxy is required for this test: scripts/test installs it (apt-get install -y haproxy)"
    );

    let mut files: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cfg"))
        .collect();
    files.sort();
    assert!(files.len() >= 80, "the corpus must hold at least 80 configs, found {}", files.len());

    let mut problems = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for f in &files {
        let (want_valid, want_line) = annotation(f);
        let h = haproxy(f);
        let l = lbd(f);
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if h.valid != want_valid || (!want_valid && h.line.unwrap_or(0) != want_line) {
            problems.push(format!(
                "{name}: haproxy says valid={} line={:?}, the header says valid={want_valid} line {want_line}",
                h.valid, h.line
            ));
        }
        if h.valid != l.valid {
            problems.push(format!("{name}: haproxy valid={}, lbd valid={}", h.valid, l.valid));
        } else if !h.valid {
            invalid += 1;
            if let Some(hl) = h.line {
                if l.line != Some(hl) {
                    problems.push(format!("{name}: haproxy's first alert is on line {hl}, lbd's on {:?}", l.line));
                }
            } else if l.line.is_none() {
                // lbd does better than haproxy here: it must always name a line.
                problems.push(format!("{name}: lbd's first alert names no line"));
            }
        } else {
            valid += 1;
        }
    }
    println!(
        "{} configs: {valid} valid and {invalid} invalid, lbd and haproxy agree on all",
        files.len()
    );
    assert!(problems.is_empty(), "{} disagreement(s):\n{}", problems.len(), problems.join("\n"));
}
