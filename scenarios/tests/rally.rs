//! Rally tasks as workloads: every shipped fixture (rally-openstack's samples, see
//! `examples/rally/README.md`) turns into the command streams that do its scenario's work, and a
//! campaign naming it validates.

use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/rally");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json" || e == "yaml"))
        .collect();
    files.sort();
    files
}

/// `command (rate, concurrency) {params}` per stream, one line each.
fn streams(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let commands = scenarios::rally::commands(path, &text, "1/s")
        .unwrap_or_else(|diagnostics| panic!("{} is refused:\n{diagnostics}", path.display()));
    commands
        .iter()
        .map(|c| {
            let params: Vec<String> = c
                .value
                .params
                .iter()
                .flat_map(|p| p.value.iter())
                .map(|(k, v)| format!("{k}={}", v.value.0))
                .collect();
            format!(
                "{} ({}, {}) {{{}}}",
                c.value.command.value,
                c.value.rate.as_ref().unwrap().value.0,
                c.value.concurrency.as_ref().unwrap().value.0,
                params.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_supported_scenario_has_a_fixture() {
    let names: Vec<String> = fixtures()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    for scenario in scenarios::rally::SUPPORTED_SCENARIOS {
        assert!(
            names.iter().any(|text| text.contains(scenario)),
            "no fixture runs {scenario}"
        );
    }
}

#[test]
fn rally_fixtures_become_the_streams_of_their_scenarios() {
    for fixture in fixtures() {
        let name = fixture.file_name().unwrap().to_string_lossy().into_owned();
        insta::assert_snapshot!(format!("rally__{name}"), streams(&fixture));
    }
}

#[test]
fn a_campaign_naming_each_fixture_validates_and_runs_its_streams() {
    let dir = tempfile::tempdir().unwrap();
    for fixture in fixtures() {
        let campaign = dir.path().join("campaign.yaml");
        std::fs::write(
            &campaign,
            format!(
                "version: 1
testbed:
  inventory: {inventory}
workload:
  rally:
    task: {task}
    rate: 30/m
experiments:
  - name: e1
    fault:
      kind: process-kill
    target:
      service: cinder-volume
    duration: 10s
",
                inventory = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("examples/testbed-inventory.yaml")
                    .display(),
                task = fixture.display()
            ),
        )
        .unwrap();
        let loaded =
            scenarios::load(&campaign).unwrap_or_else(|d| panic!("{}:\n{d}", fixture.display()));
        assert!(!loaded.workload.commands.is_empty());
        // A constant runner's streams start at the campaign's rate.
        assert!(
            loaded
                .workload
                .commands
                .iter()
                .any(|c| (c.rate_per_second - 0.5).abs() < 1e-9),
            "{}",
            fixture.display()
        );
    }
}
