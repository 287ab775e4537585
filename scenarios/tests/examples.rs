//! Every shipped example validates, conforms to the published JSON Schema, and expands into a plan.

use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| n != "testbed-inventory.yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn at_least_six_examples_ship() {
    assert!(examples().len() >= 6, "{:?}", examples());
}

#[test]
fn every_example_validates() {
    for file in examples() {
        if let Err(diagnostics) = scenarios::load(&file) {
            panic!("{} is invalid:\n{diagnostics}", file.display());
        }
    }
}

/// The examples that trace REST calls validate only because the shipped inventory lists the
/// `rest-proxy` service: against the same inventory without it they are refused at validation
/// (exit 2), not later when `butterfly run` sets up the testbed.
#[test]
fn rest_tracing_examples_are_refused_against_an_inventory_without_rest_proxy() {
    let inventory = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/testbed-inventory.yaml"),
    )
    .unwrap();
    let service_start = inventory.find("- name: rest-proxy").unwrap();
    let service_end = inventory[service_start + 1..]
        .find("\n- ")
        .map_or(inventory.len(), |end| service_start + 1 + end + 1);
    let without_rest_proxy = format!(
        "{}{}",
        &inventory[..service_start],
        &inventory[service_end..]
    );
    let read_without_rest_proxy = |path: &Path| {
        if path.ends_with("testbed-inventory.yaml") {
            Ok(without_rest_proxy.clone())
        } else {
            userinput::file::read_to_string(path, userinput::file::FileKind::INVENTORY)
        }
    };
    let mut refused = 0;
    for file in examples() {
        let bytes = std::fs::read(&file).unwrap();
        let traces_rest = scenarios::load(&file).unwrap().tracing.rest_proxy;
        let result = scenarios::load_bytes(&file, &bytes, &read_without_rest_proxy);
        if traces_rest {
            let diagnostics = result.expect_err("refused without a rest-proxy service");
            assert!(
                diagnostics
                    .to_string()
                    .contains("lists no `rest-proxy` service"),
                "{}: {diagnostics}",
                file.display()
            );
            refused += 1;
        } else if let Err(diagnostics) = result {
            panic!("{} is invalid:\n{diagnostics}", file.display());
        }
    }
    assert!(refused > 0, "no example traces REST calls");
}

#[test]
fn every_example_conforms_to_the_published_schema() {
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for file in examples() {
        let text = std::fs::read_to_string(&file).unwrap();
        let document: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", file.display());
    }
}

#[test]
fn plans_are_deterministic_and_cover_every_repetition() {
    for file in examples() {
        let campaign = scenarios::load(&file).unwrap();
        let first = scenarios::plan::expand(&campaign);
        let second = scenarios::plan::expand(&campaign);
        assert_eq!(first.render(), second.render());
        let repetitions: u32 = campaign.experiments.iter().map(|e| e.repetitions).sum();
        assert_eq!(first.runs.len() as u32, repetitions, "{}", file.display());
        for run in &first.runs {
            assert!(!run.hosts.is_empty());
            let t = &run.timeline;
            assert!(t.baseline_start < t.fault_window_start);
            assert!(t.fault_window_start < t.revert_by);
            assert!(t.revert_by < t.recovery_end);
        }
    }
}

#[test]
fn ci_smoke_plan_snapshot() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci-smoke.yaml");
    let campaign = scenarios::load(&file).unwrap();
    insta::assert_snapshot!(scenarios::plan::expand(&campaign).render());
}

/// The committed schema must be what the types generate; `UPDATE_SCHEMA=1` rewrites it.
#[test]
fn committed_schema_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.json");
    let generated = serde_json::to_string_pretty(&scenarios::campaign_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "scenarios/schema.json is stale; regenerate it with `UPDATE_SCHEMA=1 cargo test -p scenarios --test examples`"
    );
}

/// The schema offers exactly the service functions validation accepts.
#[test]
fn the_schema_lists_every_service_function() {
    let schema = serde_json::to_value(scenarios::campaign_schema()).unwrap();
    let text = schema.to_string();
    let listed: Vec<String> = scenarios::model::ServiceFunction::ALL
        .iter()
        .map(|function| format!("\"{}\"", function.as_str()))
        .collect();
    // `null` too: the field is optional.
    let expected = format!("\"enum\":[{},null]", listed.join(","));
    assert!(text.contains(&expected), "no {expected} in the schema");
}

/// A model value as JSON, to compare values of types without `PartialEq`.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// `detector-accuracy-volumes-networks.yaml` is a subset of the whole detector matrix: the same
/// workload, tracing, detectors and windows, and experiments that are the matrix's own, so that
/// its rows measure what the whole matrix's rows measure.
#[test]
fn the_volumes_and_networks_matrix_is_a_subset_of_the_whole_matrix() {
    let load = |name: &str| {
        scenarios::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(name),
        )
        .unwrap()
    };
    let whole = load("detector-accuracy.yaml");
    let subset = load("detector-accuracy-volumes-networks.yaml");
    assert_eq!(json(&subset.workload), json(&whole.workload));
    assert_eq!(json(&subset.tracing), json(&whole.tracing));
    assert_eq!(json(&subset.detectors), json(&whole.detectors));
    assert_eq!(json(&subset.timing), json(&whole.timing));
    for experiment in &subset.experiments {
        let same = whole
            .experiments
            .iter()
            .find(|e| e.name == experiment.name)
            .unwrap_or_else(|| panic!("{} is not in the whole matrix", experiment.name));
        // The target's seed derives from the campaign's name; the rest is the same.
        let without_seed = |experiment: &scenarios::model::Experiment| {
            let mut value = serde_json::to_value(experiment).unwrap();
            value["target"]["seed"] = serde_json::Value::Null;
            value
        };
        assert_eq!(
            without_seed(experiment),
            without_seed(same),
            "{}",
            experiment.name
        );
    }
    for service in [
        "cinder-api",
        "cinder-scheduler",
        "cinder-volume",
        "neutron-api",
    ] {
        let mut faults: Vec<&str> = subset
            .experiments
            .iter()
            .filter(|e| {
                e.target
                    .service
                    .as_ref()
                    .is_some_and(|s| s.name.as_str() == service)
            })
            .map(|e| e.fault.kind().name())
            .collect();
        faults.sort_unstable();
        assert_eq!(
            faults,
            ["process-freeze", "process-kill", "service-stop"],
            "{service}"
        );
    }
}
