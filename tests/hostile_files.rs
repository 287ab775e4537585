//! Files that could exhaust the machine or leak a secret: a device, a FIFO, a directory, a 50 MB
//! file, a URL file given where YAML is expected. Each is refused with exit 2 and a short message
//! naming the file and the limit, and never hangs: every run has a watchdog that kills it, so a
//! regression to blocking fails the test instead of hanging CI (a hang guard, not a timing
//! assertion).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for a loaded CI machine, short enough to notice a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn butterfly(args: &[&str]) -> Outcome {
    let mut child = Command::new(assert_cmd::cargo::cargo_bin!("butterfly"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WATCHDOG {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("butterfly {args:?} still ran after {WATCHDOG:?}: it blocks on its input");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        code: status.code(),
        stderr,
    }
}

/// Each hostile input with the words its refusal must contain.
fn hostile_inputs(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("fifo.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let subdir = dir.join("directory.yaml");
    std::fs::create_dir(&subdir).unwrap();
    let big = dir.join("big.yaml");
    // One 50 MB line, the shape that once had its whole line printed.
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(50 * 1024 * 1024).unwrap();
    vec![
        (
            PathBuf::from("/dev/zero"),
            "is a character device, not a regular file",
        ),
        (fifo, "is a FIFO (named pipe), not a regular file"),
        (subdir, "is a directory, not a regular file"),
        (big, "is 50 MiB"),
    ]
}

fn assert_refused(outcome: &Outcome, path: &Path, what: &str, kind: &str) {
    assert_refused_within(outcome, path, what, kind, "1 MiB");
}

fn assert_refused_within(outcome: &Outcome, path: &Path, what: &str, kind: &str, limit: &str) {
    let stderr = &outcome.stderr;
    assert_eq!(outcome.code, Some(2), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains(what), "{stderr}");
    assert!(stderr.contains(kind), "{stderr}");
    assert!(stderr.contains(limit), "{stderr}");
    assert!(
        stderr.len() < 2_000,
        "the message is {} bytes",
        stderr.len()
    );
}

#[test]
fn validate_refuses_a_device_a_fifo_a_directory_and_a_huge_file_as_campaigns() {
    let dir = tempfile::tempdir().unwrap();
    for (path, what) in hostile_inputs(dir.path()) {
        let outcome = butterfly(&["validate", path.to_str().unwrap()]);
        assert_refused(&outcome, &path, what, "a campaign file");
    }
}

#[test]
fn a_campaign_naming_a_device_a_fifo_a_directory_or_a_huge_file_as_inventory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (path, what) in hostile_inputs(dir.path()) {
        let campaign = dir.path().join("campaign.yaml");
        std::fs::write(
            &campaign,
            format!(
                "version: 1\ntestbed:\n  inventory: {}\nexperiments:\n  - name: e\n    fault:\n      kind: process-kill\n    target:\n      service: nova-conductor\n    duration: 10s\n",
                path.display()
            ),
        )
        .unwrap();
        let outcome = butterfly(&["validate", campaign.to_str().unwrap()]);
        assert_refused(&outcome, &path, what, "an inventory");
        assert!(
            outcome.stderr.contains("campaign.yaml:3:14"),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn an_inventory_that_is_a_url_file_is_refused_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = "amqp://butterfly-tracer:S3cretPw@10.77.0.2:5672/";
    std::fs::write(dir.path().join("amqp-url"), format!("{url}\n")).unwrap();
    let campaign = dir.path().join("campaign.yaml");
    std::fs::write(
        &campaign,
        "version: 1\ntestbed:\n  inventory: amqp-url\nexperiments:\n  - name: e\n    fault:\n      kind: process-kill\n    target:\n      service: nova-conductor\n    duration: 10s\n",
    )
    .unwrap();
    let outcome = butterfly(&["validate", campaign.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("amqp-url:1:1"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("S3cretPw"), "{}", outcome.stderr);
    assert!(!outcome.stderr.contains(url), "{}", outcome.stderr);
}

#[test]
fn report_and_diagnose_refuse_inputs_that_are_not_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let made = Command::new("mkfifo")
        .arg(run.join("report.json"))
        .status()
        .unwrap();
    assert!(made.success());
    let outcome = butterfly(&["report", run.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("is a FIFO (named pipe), not a regular file; a report.json"),
        "{}",
        outcome.stderr
    );

    let outcome = butterfly(&[
        "diagnose",
        "--fingerprints",
        "/dev/zero",
        "--traces",
        run.to_str().unwrap(),
    ]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("/dev/zero is a character device, not a regular file; a fingerprint store"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn trace_import_refuses_hostile_span_files_and_tag_maps_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebuilt");
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("tracer/tests/fixtures/spans/otlp.json");
    for (path, what) in hostile_inputs(dir.path()) {
        let shown = path.to_str().unwrap();
        // A directory is a trace directory to `trace import`: only the tag map refuses it here.
        if !path.is_dir() {
            let outcome = butterfly(&["trace", "import", shown, "--out", out.to_str().unwrap()]);
            // One 50 MB line is refused by the line limit of a trace file, not its size limit.
            if what == "is 50 MiB" {
                // Within a trace file's limit: read, and refused as what it is, without its body.
                assert_eq!(outcome.code, Some(2), "{}", outcome.stderr);
                assert!(
                    outcome.stderr.contains("it is not JSON"),
                    "{}",
                    outcome.stderr
                );
                assert!(outcome.stderr.len() < 2_000, "{}", outcome.stderr);
            } else {
                assert_refused_within(&outcome, &path, what, "a trace file", "1 GiB");
            }
        }
        let outcome = butterfly(&[
            "trace",
            "import",
            good.to_str().unwrap(),
            "--tag-map",
            shown,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_refused_within(&outcome, &path, what, "a tag map", "64 KiB");
        assert!(!out.exists());
    }
}
