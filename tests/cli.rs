//! The `butterfly` binary's contract: exit codes and output of the foundation commands.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_accepts_every_example_and_checks_the_inventory_among_them_as_one() {
    // What `butterfly validate scenarios/examples/*.yaml` (the README's example) is given.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    butterfly()
        .arg("validate")
        .args(&files)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ok (").count(files.len() - 1))
        .stdout(predicate::str::contains(
            "testbed-inventory.yaml: ok, is an inventory (3 host(s), ",
        ));
}

/// `butterfly validate` of `text`, written to `name` in a directory of its own.
fn validate_text(name: &str, text: &str) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    butterfly().arg("validate").arg(&file).assert()
}

#[test]
fn validate_reports_an_inventory_s_own_problems_as_an_inventory_with_exit_2() {
    validate_text(
        "inventory.yaml",
        "version: 1\nhosts:\n  - name: a\n    address: 10.0.0.1\nservices:\n  - name: s\n    unit: s.service\n    roles: [x]\n    bogus: 1\n",
    )
    .code(2)
        .stderr(predicate::str::contains(
            "inventory.yaml:9:5: unknown field \"bogus\"",
        ))
        .stderr(predicate::str::contains(
            "inventory.yaml: is an inventory, 1 problem(s)",
        ));
}

#[test]
fn validate_refuses_a_bad_campaign_with_exit_2_and_located_diagnostics() {
    validate_text(
        "campaign.yaml",
        "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 10.0.0.1\nexperiments:\n  - name: e\n    fault:\n      kind: kil\n    duration: 5s\n",
    )
    .code(2)
        .stderr(predicate::str::contains(
            "campaign.yaml:9:13: unknown fault kind \"kil\"; did you mean \"process-kill\"?",
        ));
}

#[test]
fn a_missing_file_is_invalid_input() {
    butterfly()
        .args(["validate", "/nonexistent/campaign.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read the file"));
}

#[test]
fn plan_is_deterministic_and_seed_dependent() {
    let run = |seed: &str| {
        let output = butterfly()
            .args(["plan", "--seed", seed, &example("partition-compute.yaml")])
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run("1"), run("1"));
    let distinct: std::collections::BTreeSet<String> =
        (0..16).map(|s| run(&s.to_string())).collect();
    assert!(
        distinct.len() > 1,
        "different seeds must be able to pick different hosts"
    );
}

#[test]
fn plan_json_lists_every_repetition() {
    let output = butterfly()
        .args(["plan", "--json", &example("freeze-scheduler.yaml")])
        .output()
        .unwrap();
    assert!(output.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["runs"].as_array().unwrap().len(), 3);
    assert_eq!(plan["runs"][0]["timeline"]["inject"]["kind"], "observed");
}

#[test]
fn schema_matches_the_committed_file() {
    let output = butterfly().arg("schema").output().unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

/// The path of every command and subcommand, from clap's own tree (so none can be forgotten).
fn command_paths(command: &clap::Command, path: Vec<String>, paths: &mut Vec<Vec<String>>) {
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_owned());
        command_paths(sub, sub_path.clone(), paths);
        paths.push(sub_path);
    }
}

#[test]
fn every_command_and_subcommand_has_help_with_examples() {
    use clap::CommandFactory;
    let mut paths = vec![Vec::new()];
    command_paths(&butterfly::cli::Cli::command(), Vec::new(), &mut paths);
    assert!(
        paths.contains(&vec!["testbed".to_owned(), "discover".to_owned()]),
        "{paths:?}"
    );
    for path in &paths {
        for flag in ["-h", "--help"] {
            butterfly()
                .args(path)
                .arg(flag)
                .assert()
                .code(0)
                .stdout(predicate::str::contains("Examples"));
        }
    }
}

#[test]
fn trace_refuses_a_url_that_is_not_amqp_with_exit_2_naming_the_flag_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace");
    butterfly()
        .args(["trace", "--amqp", "http://x", "--duration", "1s", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--amqp: \"http://x\" is not an AMQP URL",
        ));
    // Without --out, both problems are told at once.
    butterfly()
        .args(["trace", "--amqp", "http://x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--out DIR is required"))
        .stderr(predicate::str::contains("--amqp: "));
    // A password in a bad URL is not echoed.
    butterfly()
        .args(["trace", "--amqp", "amqp://u:not-a-secret@[bad/", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not-a-secret").not());
    assert!(!out.exists());
}

#[test]
fn trace_to_an_unreachable_broker_exits_3_and_leaves_no_trace_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trace");
    // Port 9 (discard) is closed on loopback here.
    butterfly()
        .args([
            "trace",
            "--amqp",
            "amqp://guest@127.0.0.1:9/%2f",
            "--firehose-switch",
        ])
        .args(["none", "--duration", "1s", "--out"])
        .arg(&out)
        .assert()
        .code(3);
    assert!(!out.exists());
}

#[test]
fn plan_dry_run_json_puts_each_host_s_commands_into_each_run() {
    let output = butterfly()
        .args([
            "plan",
            "--dry-run",
            "--json",
            &example("partition-compute.yaml"),
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = plan["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let commands = run["commands"].as_array().unwrap();
        assert_eq!(commands.len(), run["hosts"].as_array().unwrap().len());
        assert_eq!(commands[0]["host"], run["hosts"][0]);
        let phases: Vec<&str> = commands[0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["phase"].as_str().unwrap())
            .collect();
        for phase in [
            "preflight",
            "control-rtt",
            "inject+verify",
            "control-check",
            "revert+verify",
        ] {
            assert!(phases.contains(&phase), "{phases:?}");
        }
        let inject =
            &commands[0]["steps"][phases.iter().position(|p| *p == "inject+verify").unwrap()];
        assert!(
            inject["command"].as_str().unwrap().contains("10.77.0.2"),
            "{inject}"
        );
    }
}

#[test]
fn run_refuses_a_campaign_without_cloud_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campaign.yaml");
    std::fs::write(
        &file,
        "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\nexperiments:\n  - name: e\n    fault: {kind: service-stop}\n    target: {service: s}\n    duration: 1s\n",
    )
    .unwrap();
    butterfly()
        .args(["run", "--run-dir"])
        .arg(dir.path().join("run"))
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no `cloud` section"));
}

/// A campaign whose cloud cannot be reached (port 9, discard, is closed on loopback here), with
/// `tracing` inserted before its experiments.
fn unreachable_cloud_campaign(tracing: &str) -> String {
    format!(
        "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\ncloud:\n  auth:\n    auth_url: http://127.0.0.1:9/v3\n    username: admin\n    password_env: BUTTERFLY_TEST_UNREACHABLE_PASSWORD\n    project_name: admin\n{tracing}experiments:\n  - name: e\n    fault: {{kind: service-stop}}\n    target: {{service: s}}\n    duration: 1s\n"
    )
}

/// `butterfly run` of `campaign` (written to `campaign.yaml`), with the cloud's password set.
fn run_campaign(campaign: &str) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    run_campaign_in(dir.path(), campaign)
}

/// Runs `campaign`, written to `dir/campaign.yaml`, with its run directory `dir/run`.
fn run_campaign_in(dir: &Path, campaign: &str) -> assert_cmd::assert::Assert {
    let file = dir.join("campaign.yaml");
    std::fs::write(&file, campaign).unwrap();
    butterfly()
        .env("BUTTERFLY_TEST_UNREACHABLE_PASSWORD", "not-a-secret")
        .args(["run", "--run-dir"])
        .arg(dir.join("run"))
        .arg(&file)
        .assert()
}

#[test]
fn run_reports_an_unreachable_cloud_as_a_setup_error_with_exit_3() {
    run_campaign(&unreachable_cloud_campaign(""))
        .code(3)
        .stderr(predicate::str::contains(
            "authentication against http://127.0.0.1:9/v3 failed",
        ))
        .stderr(predicate::str::contains("not-a-secret").not());
}

#[test]
fn run_refuses_rest_tracing_without_a_rest_proxy_service_with_exit_2_before_the_cloud() {
    // The cloud is unreachable too (as in the exit-3 test above): validation must refuse the
    // campaign before the run gets as far as authenticating.
    run_campaign(&unreachable_cloud_campaign("tracing:\n  rest_proxy: true\n"))
        .code(2)
        .stderr(predicate::str::contains(
            "campaign.yaml:18:15: `tracing.rest_proxy` is on but the testbed lists no `rest-proxy` service",
        ));
}

#[test]
fn run_refuses_a_missing_fingerprint_store_with_exit_2_before_the_cloud() {
    // The cloud is unreachable too: the store must be refused before the run authenticates,
    // creates its directory or injects anything.
    let dir = tempfile::tempdir().unwrap();
    let detectors =
        "detectors:\n  - name: fp\n    builtin: fingerprint\n    fingerprints: fp.json\n";
    run_campaign_in(dir.path(), &unreachable_cloud_campaign(detectors))
        .code(2)
        .stderr(predicate::str::contains(format!(
            "detector \"fp\": cannot use its fingerprint store: cannot read {}",
            dir.path().join("fp.json").display()
        )));
    assert!(!dir.path().join("run").exists());
}

#[test]
fn plan_dry_run_prints_every_phase_for_every_host() {
    let output = butterfly()
        .args(["plan", "--dry-run", &example("partition-compute.yaml")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    for phase in [
        " preflight:",
        " control-rtt:",
        " inject+verify:",
        " control-check:",
        " revert+verify:",
    ] {
        assert_eq!(
            text.matches(phase).count(),
            2,
            "{phase} once per repetition:\n{text}"
        );
    }
    // The partition names the controller's address, quoted into nft's argv.
    assert!(text.contains("10.77.0.2"), "{text}");
}

#[test]
fn plan_dry_run_prints_every_runbook_command_of_the_self_healing_example() {
    let output = butterfly()
        .args(["plan", "--dry-run", &example("self-healing.yaml")])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let remediation = text
        .split("## remediation")
        .nth(1)
        .expect("a remediation section");
    for expected in [
        "runbook thaw-conductor for nova-conductor on controller",
        "(thaw) of runbook thaw-conductor",
        "(restart-service) of runbook start-scheduler",
        "systemctl restart devstack@n-sch",
        "find /srv/glance -xdev -type f -name '.bfly-fill-*' -print -delete",
        "collect disk-usage on",
        "settle (recover):",
    ] {
        assert!(
            remediation.contains(expected),
            "no {expected:?} in:\n{remediation}"
        );
    }
}

// The tracer's RabbitMQ test helpers: a vhost of the test's own and `rabbitmqctl`.
#[allow(dead_code)]
#[path = "../tracer/tests/common/rabbitmq.rs"]
mod rabbitmq;

use rabbitmq::{TestVhost, rabbitmqctl};

/// When the broker drops the tracer, `butterfly trace` says so and reconnects in its own words;
/// lapin's ERROR lines about the same close frame stay out of the default log.
#[test]
fn trace_reports_a_dropped_broker_connection_once_in_its_own_words() {
    let vhost = TestVhost::new("cli-reconnect");
    let out = tempfile::tempdir().unwrap();
    let tracer = std::process::Command::new(assert_cmd::cargo::cargo_bin!("butterfly"))
        .args(["trace", "--tap", "amq.topic", "--duration", "8s", "--out"])
        .arg(out.path())
        .arg("--amqp")
        .arg(vhost.url())
        .env_remove("BUTTERFLY_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The tracer's connection in this vhost, by the name it gives itself.
    let connection = || {
        rabbitmqctl(&["list_connections", "pid", "vhost", "client_properties"])
            .lines()
            .find(|line| line.contains(&vhost.0) && line.contains("\"butterfly-tracer\""))
            .and_then(|line| line.split_whitespace().next().map(str::to_owned))
    };
    let mut pid = None;
    // Each listing takes a few hundred milliseconds; the tracer connects well within the first.
    for _ in 0..20 {
        pid = connection();
        if pid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = pid.expect("the tracer connects");
    rabbitmqctl(&["close_connection", &pid, "butterfly test: broker restart"]);
    let output = tracer.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the AMQP capture lost the broker, reconnecting")
            && stderr.contains("consumes again after reconnecting"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("lapin"),
        "lapin's own log leaked: {stderr}"
    );
}

/// `butterfly fingerprint learn --negative` of the recorded trace taken while nova-compute on
/// osbed was stopped, with `extra` flags.
fn learn_negative(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    let traces =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprint/tests/fixtures/compute-down");
    butterfly()
        .args(["fingerprint", "learn", "--negative", "--traces"])
        .arg(traces)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
}

#[test]
fn learn_negative_labels_only_transactions_in_the_window_that_reached_the_faulty_service() {
    let dir = tempfile::tempdir().unwrap();
    let label = [
        "--fault-kind",
        "service-stop",
        "--service",
        "nova-compute",
        "--host",
        "osbed",
    ];
    // Of 51 transactions only the create and the delete reach nova-compute.
    learn_negative(&dir.path().join("all.json"), &label)
        .code(0)
        .stdout(predicate::str::contains(
            "learned 2 run(s) as negative fingerprints",
        ));
    // The window ends before the delete starts.
    let window = [
        "--since",
        "2026-11-28T10:20:00Z",
        "--until",
        "2026-11-28T10:20:27.3Z",
    ];
    learn_negative(
        &dir.path().join("window.json"),
        &[&label[..], &window[..]].concat(),
    )
    .code(0)
    .stdout(predicate::str::contains(
        "learned 1 run(s) as negative fingerprints",
    ));
}

#[test]
fn learn_negative_refuses_labels_outside_the_catalog_and_the_inventory_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fp.json");
    learn_negative(
        &out,
        &["--fault-kind", "proces-kill", "--service", "nova-compute"],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "--fault-kind \"proces-kill\" is not a fault kind; did you mean \"process-kill\"?",
    ));
    let inventory = example("testbed-inventory.yaml");
    // Without an inventory, service and host are not checked.
    learn_negative(
        &out,
        &[
            "--fault-kind",
            "process-kill",
            "--service",
            "nova-compte",
            "--host",
            "compute9",
        ],
    )
    .code(0);
    learn_negative(
        &out,
        &[
            "--fault-kind",
            "process-kill",
            "--service",
            "nova-compte",
            "--host",
            "compute9",
            "--inventory",
            &inventory,
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "--service \"nova-compte\" is not a service of",
    ))
    .stderr(predicate::str::contains("did you mean \"nova-compute\"?"))
    .stderr(predicate::str::contains(
        "--host \"compute9\" is not a host of",
    ));
    learn_negative(
        &out,
        &[
            "--fault-kind",
            "process-kill",
            "--service",
            "nova-compute",
            "--host",
            "controller",
            "--inventory",
            &inventory,
        ],
    )
    .code(2)
    .stderr(predicate::str::contains(
        "--host \"controller\": nova-compute does not run there",
    ));
}
