//! Headless Chromium for the page tests (Debian's `chromium`): shared by the run report's test
//! here and the trends page's in the `history` crate (included there with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn chromium() -> Option<PathBuf> {
    if std::env::var_os("BUTTERFLY_SKIP_BROWSER").is_some() {
        return None;
    }
    let binary = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromium"));
    let found = Command::new(&binary).arg("--version").output();
    match found {
        Ok(output) if output.status.success() => Some(binary),
        _ => panic!(
            "headless Chromium is needed for this test: install it (`apt-get install -y chromium`), \
             point CHROMIUM at it, or set BUTTERFLY_SKIP_BROWSER=1 to skip"
        ),
    }
}

pub struct Run {
    pub stdout: String,
    pub console: Vec<String>,
}

/// Runs Chromium headless on `page` with `mode` (e.g. `--dump-dom`) and collects its console.
pub fn run_chromium(binary: &Path, page: &Path, mode: &[String]) -> Run {
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new("timeout")
        .arg("180")
        .arg(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(mode)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        // Chromium logs every console message (and CSP violation) as `…:CONSOLE:…] "text", source: …`.
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    }
}
