use std::path::Path;
use std::sync::Arc;

use scenarios::model::Campaign;
use scenarios::remediation::Action;

use super::*;
use crate::journal::Journal;
use crate::plan::FaultPlan;
use crate::transport::{Connections, TransportSettings};
use crate::{EngineSettings, FaultInput, PlanOptions};

const CAMPAIGN: &str = "version: 1
testbed:
  hosts:
    - {name: controller, address: 10.77.0.2, roles: [controller]}
  services:
    - {name: nova-conductor, unit: devstack@n-cond, roles: [controller], function: worker}
    - {name: rabbitmq, unit: rabbitmq-server, roles: [controller], function: broker}
    - {name: memcached, unit: memcached, roles: [controller], function: cache, ports: [11211]}
    - name: nova-api
      container: {engine: docker, name: nova_api, unit: kolla-nova_api-container.service}
      roles: [controller]
experiments:
  - name: freeze
    fault: {kind: process-freeze}
    target: {service: nova-conductor}
    duration: 10s
detectors:
  - {name: fp, builtin: fingerprint}
remediation:
  mode: auto
  runbooks:
    - name: every-action
      actions:
        - {action: restart-service}
        - {action: kill-hung-process}
        - {action: thaw}
        - {action: free-disk, paths: [/var/lib/glance/images], files: 'bfly-fill-*'}
        - {action: flush-cache}
        - {action: restart-broker-app}
        - {action: reboot-host, allow_destructive: true}
        - {command: [/usr/local/bin/repair, --unit, 'it''s; rm -rf /']}
        - {action: restart-service, service: nova-api}
";

fn campaign() -> Campaign {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, CAMPAIGN).unwrap();
    scenarios::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn plan_action(campaign: &Campaign, action: &Action, host: &HostSpec, id: &str) -> ActionPlan {
    let testbed = &campaign.testbed;
    let suspect = testbed.services.first();
    ActionInput {
        id,
        runbook: "every-action",
        action,
        host,
        service: scenarios::remediation::acted_on(action, testbed, suspect),
    }
    .plan()
    .unwrap()
}

#[test]
fn every_catalog_action_plans_to_quoted_scripts() {
    let campaign = campaign();
    let host = HostSpec::local("controller");
    let remediation = campaign.remediation.as_ref().unwrap();
    let rendered: String = remediation.runbooks[0]
        .actions
        .iter()
        .enumerate()
        .map(|(index, action)| {
            plan_action(&campaign, action, &host, &format!("a000000{index}")).dry_run()
        })
        .collect();
    // The user's argument reaches the shell as one quoted word.
    assert!(rendered.contains("'it'\\''s; rm -rf /'"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn evidence_steps_plan_to_bounded_read_only_scripts() {
    let campaign = campaign();
    let host = HostSpec::local("controller");
    let conductor = campaign.testbed.services.first();
    let rendered: String = Evidence::ALL
        .iter()
        .map(|evidence| {
            let plan = plan_diagnostic(
                &DiagnosticStep::Collect(*evidence),
                &host,
                conductor,
                1_700_000_000,
            )
            .unwrap();
            format!("{}: {}\n", plan.name, plan.script)
        })
        .collect();
    assert!(rendered.contains("--since=@1700000000"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn a_protected_tree_is_refused_again_when_planning() {
    let action = Action {
        kind: ActionKind::FreeDisk {
            paths: vec![scenarios::units::PathName::new("/var/lib/mysql").unwrap()],
            files: "*".into(),
        },
        service: None,
    };
    let error = ActionInput {
        id: "abcdef01",
        runbook: "r",
        action: &action,
        host: &HostSpec::local("here"),
        service: None,
    }
    .plan()
    .unwrap_err();
    assert!(
        error.to_string().contains("protected /var/lib/mysql"),
        "{error}"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn injector(run_dir: &Path) -> Injector {
    Injector::new(
        Arc::new(Connections::new(TransportSettings::default())),
        Arc::new(Journal::open(run_dir).unwrap()),
        EngineSettings::default(),
    )
}

#[test]
fn free_disk_removes_only_matching_files_under_its_paths_and_says_how_many() {
    let run_dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    let keep = store.path().join("image-1");
    std::fs::write(&keep, b"image").unwrap();
    std::fs::create_dir(store.path().join("sub")).unwrap();
    for name in ["bfly-fill-1", "sub/bfly-fill-2"] {
        std::fs::write(store.path().join(name), b"fill").unwrap();
    }
    let action = Action {
        kind: ActionKind::FreeDisk {
            paths: vec![scenarios::units::PathName::new(store.path().to_str().unwrap()).unwrap()],
            files: "bfly-fill-*".into(),
        },
        service: None,
    };
    let host = HostSpec::local("here");
    let plan = ActionInput {
        id: "abcdef02",
        runbook: "free",
        action: &action,
        host: &host,
        service: None,
    }
    .plan()
    .unwrap();
    let injector = injector(run_dir.path());
    let done = runtime().block_on(injector.remediate(&plan, &[])).unwrap();
    assert_eq!(done.observed.as_deref(), Some("removed 2 files"));
    assert!(keep.exists());
    assert!(!store.path().join("bfly-fill-1").exists());
    assert!(!store.path().join("sub/bfly-fill-2").exists());
    let records = journal::read(run_dir.path()).unwrap();
    assert!(matches!(&records[0], Record::Remediating { action, .. } if action.id == "abcdef02"));
    assert!(matches!(&records[1], Record::Remediated { error: None, by, .. } if by == "runner"));
    assert!(journal::pending_actions(&records).is_empty());
}

#[test]
fn a_failing_action_is_journaled_as_over_with_its_error() {
    let run_dir = tempfile::tempdir().unwrap();
    let action = Action {
        kind: ActionKind::Command {
            argv: vec!["false".into()],
        },
        service: None,
    };
    let host = HostSpec::local("here");
    let plan = ActionInput {
        id: "abcdef03",
        runbook: "r",
        action: &action,
        host: &host,
        service: None,
    }
    .plan()
    .unwrap();
    let error = runtime()
        .block_on(injector(run_dir.path()).remediate(&plan, &[]))
        .unwrap_err();
    assert!(error.to_string().contains("remediation failed"), "{error}");
    let records = journal::read(run_dir.path()).unwrap();
    assert!(matches!(
        &records[1],
        Record::Remediated { error: Some(_), .. }
    ));
}

fn one_shot_fault(id: &str, marker: &Path) -> FaultPlan {
    // A harmless fault on this machine: a marker file, removed by the revert.
    let marker = quote(marker.to_str().unwrap());
    FaultPlan {
        id: id.to_owned(),
        kind: "disk-fill".into(),
        host: HostSpec::local("here"),
        fault: serde_json::json!({"kind": "disk-fill"}),
        duration: Duration::from_secs(5),
        preflight: Check {
            what: "true".into(),
            script: "true".into(),
        },
        inject: format!("touch {marker}"),
        verify: Check {
            what: "the marker exists".into(),
            script: format!("[ -e {marker} ]"),
        },
        revert: Some(format!("rm -f {marker}")),
        verify_reverted: Some(Check {
            what: "the marker is gone".into(),
            script: format!("[ ! -e {marker} ]"),
        }),
        deadman: false,
        delayer: None,
        checks_control_channel: false,
    }
}

#[test]
fn a_fault_undone_by_a_remediation_is_journaled_as_restored_by_it_not_by_its_revert() {
    let run_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let marker = files.path().join("bfly-fill-0000");
    let injector = injector(run_dir.path());
    let runtime = runtime();
    let fault = one_shot_fault("feed0001", &marker);
    let active = runtime.block_on(injector.inject(&fault)).unwrap();
    assert!(marker.exists());
    let action = Action {
        kind: ActionKind::FreeDisk {
            paths: vec![scenarios::units::PathName::new(files.path().to_str().unwrap()).unwrap()],
            files: "bfly-fill-*".into(),
        },
        service: None,
    };
    let host = HostSpec::local("here");
    let plan = ActionInput {
        id: "abcdef04",
        runbook: "free-glance",
        action: &action,
        host: &host,
        service: None,
    }
    .plan()
    .unwrap();
    let restores = plan.restores(&[InEffect {
        id: "feed0001",
        kind: FaultKind::DiskFill,
        host: "here",
        service: None,
    }]);
    assert_eq!(restores, ["feed0001"]);
    runtime
        .block_on(injector.remediate(&plan, &restores))
        .unwrap();
    assert!(!marker.exists());
    // The fault's revert still runs (idempotent), and says who restored the host.
    let observed = runtime
        .block_on(injector.revert(&active, "runner"))
        .unwrap();
    assert_eq!(
        observed.as_deref(),
        Some("already restored by free-disk abcdef04 of runbook free-glance")
    );
    let records = journal::read(run_dir.path()).unwrap();
    let reverted = records
        .iter()
        .find_map(|record| match record {
            Record::Reverted { restored_by, .. } => Some(restored_by.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(reverted.as_deref(), Some("abcdef04"));
}

#[test]
fn an_action_on_another_host_or_service_restores_nothing() {
    let campaign = campaign();
    let remediation = campaign.remediation.as_ref().unwrap();
    let thaw = &remediation.runbooks[0].actions[2];
    let plan = plan_action(&campaign, thaw, &HostSpec::local("controller"), "abcdef05");
    let fault = |host, service| InEffect {
        id: "feed0002",
        kind: FaultKind::ProcessFreeze,
        host,
        service,
    };
    assert_eq!(
        plan.restores(&[fault("controller", Some("nova-conductor"))]),
        ["feed0002"]
    );
    assert!(
        plan.restores(&[fault("compute1", Some("nova-conductor"))])
            .is_empty()
    );
    assert!(
        plan.restores(&[fault("controller", Some("nova-scheduler"))])
            .is_empty()
    );
    let stop = InEffect {
        kind: FaultKind::DiskFill,
        ..fault("controller", None)
    };
    assert!(plan.restores(&[stop]).is_empty());
}

#[test]
fn recover_settles_an_action_the_runner_never_finished_and_only_once() {
    let run_dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let settled = files.path().join("settled");
    let journal = Journal::open(run_dir.path()).unwrap();
    let plan = ActionPlan {
        id: "abcdef06".into(),
        runbook: "r".into(),
        action: "restart-service".into(),
        host: HostSpec::local("here"),
        service: Some("victim".into()),
        script: "sleep 60".into(),
        check: None,
        settle: Some(format!("touch {}", quote(settled.to_str().unwrap()))),
        undoes: vec![],
    };
    journal
        .append(&Record::Remediating {
            at_ms: 1,
            action: Box::new(plan),
            restores: vec![],
        })
        .unwrap();
    let connections = Connections::new(TransportSettings::default());
    let runtime = runtime();
    let report = runtime
        .block_on(crate::recover(
            run_dir.path(),
            &connections,
            &EngineSettings::default(),
        ))
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].kind, "remediation restart-service");
    assert_eq!(report[0].outcome, Ok("settled".to_owned()));
    assert!(settled.exists());
    let again = runtime
        .block_on(crate::recover(
            run_dir.path(),
            &connections,
            &EngineSettings::default(),
        ))
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn plans_of_faults_are_not_changed_by_remediation() {
    // The freeze's revert stays idempotent: running it after a thaw is harmless by construction.
    let campaign = campaign();
    let service = &campaign.experiments[0].target.service;
    let plan = FaultInput {
        id: "abcdef07",
        fault: &campaign.experiments[0].fault,
        host: &HostSpec::local("controller"),
        service: service.as_ref(),
        duration: Duration::from_secs(10),
    }
    .plan(&PlanOptions::default())
    .unwrap();
    assert!(plan.revert.unwrap().ends_with("; true"));
}
