//! The Grafana dashboard (`dashboards/grafana.json`) only queries metrics the run exports.

use std::collections::BTreeSet;

#[test]
fn dashboard_queries_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/grafana.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/run/report.json"
    ))
    .unwrap();
    let report = reports::Report::from_json(&text).unwrap();
    let metrics = reports::metrics::RunMetrics::from_report(&report);
    metrics.set_phase("kill-nova-conductor", "baseline");
    let exported: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();

    let mut queried = BTreeSet::new();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            panel["gridPos"].is_object(),
            "panel {} has no position",
            panel["title"]
        );
        for target in panel["targets"].as_array().expect("targets") {
            // The run-history panels query PostgreSQL; the history crate's tests run their SQL.
            if target["datasource"]["type"] != "prometheus" {
                assert!(target["rawSql"].is_string(), "panel {}", panel["title"]);
                continue;
            }
            exprs.push(
                target["expr"]
                    .as_str()
                    .expect("a PromQL expression")
                    .to_owned(),
            );
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["datasource"]["type"] != "prometheus" {
            continue;
        }
        if let Some(query) = variable["definition"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    for expr in &exprs {
        let mut rest = expr.as_str();
        while let Some(start) = rest.find("butterfly_") {
            let name: String = rest[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[start + name.len()..];
            queried.insert(name);
        }
    }
    assert!(
        queried.len() >= 7,
        "the dashboard shows the run's metrics: {queried:?}"
    );
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics nobody exports: {missing:?} (exported: {exported:?})"
    );
}
