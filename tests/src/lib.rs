//! Helpers for the end-to-end tests: finding the real binaries and running them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `lbd` binary built for this test run (`target/<profile>/lbd`), or `$LBD_BIN`.
pub fn lbd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("LBD_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("lbd");
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build -p lbd`, as scripts/test does)",
        bin.display()
    );
    bin
}

/// The test corpus folder.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Runs a command with the environment the corpus assumes: `HOME` set and
/// `LBD_UNSET_XYZ` unset.
pub fn run(cmd: &mut Command) -> Output {
    cmd.env("HOME", "/root").env_remove("LBD_UNSET_XYZ");
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// The line number cited by the first `[ALERT]` line of a checker's output
/// (`[FILE:N]` or `(FILE:N)`), if any.
pub fn first_alert_line(output: &str) -> Option<usize> {
    let alert = output.lines().find(|l| l.starts_with("[ALERT]"))?;
    let bytes = alert.as_bytes();
    for (i, c) in alert.char_indices() {
        if c != ':' {
            continue;
        }
        let digits: String = alert[i + 1..].chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            continue;
        }
        let after = bytes.get(i + 1 + digits.len()).copied();
        if matches!(after, Some(b']') | Some(b')')) {
            return digits.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_alert_line;

    #[test]
    fn alert_lines_are_found_in_both_shapes() {
        let h = "[NOTICE] x\n[ALERT]    (1) : config : parsing [a.cfg:12] : unknown keyword 'x'\n";
        assert_eq!(first_alert_line(h), Some(12));
        let m = "[ALERT]    (1) : config : http frontend 'f' (a.cfg:3) tries to use incompatible tcp backend 'b' (a.cfg:5)";
        assert_eq!(first_alert_line(m), Some(3));
        assert_eq!(
            first_alert_line("[ALERT] (1) : config : Proxy 'b': unable to find stick-table 'x'."),
            None
        );
        assert_eq!(first_alert_line("Configuration file is valid"), None);
    }
}
