use std::path::Path;

use super::*;
use crate::model::Campaign;

const BASE: &str = "version: 1
testbed:
  hosts:
    - {name: controller, address: 10.77.0.2, roles: [controller]}
    - {name: compute1, address: 10.77.0.3, roles: [compute]}
    - {name: compute2, address: 10.77.0.4, roles: [compute]}
  services:
    - {name: nova-conductor, unit: devstack@n-cond, roles: [controller], function: worker}
    - {name: nova-scheduler, unit: devstack@n-sch, roles: [controller], function: worker}
    - {name: nova-compute, unit: devstack@n-cpu, roles: [compute], function: agent}
    - {name: glance-api, unit: devstack@g-api, roles: [controller], function: api}
    - {name: rabbitmq, unit: rabbitmq-server, roles: [controller], function: broker}
    - {name: memcached, unit: memcached, roles: [controller], function: cache, ports: [11211]}
experiments:
  - name: freeze
    fault: {kind: process-freeze}
    target: {service: nova-conductor}
    duration: 10s
detectors:
  - {name: fp, builtin: fingerprint}
  - {name: to, builtin: timeout}
  - {name: ext, command: [/usr/local/bin/detect]}
";

fn campaign(remediation: &str) -> Result<Campaign, String> {
    let text = format!("{BASE}remediation:\n{remediation}");
    let read = |_: &Path| -> Result<String, userinput::file::Error> { unreachable!() };
    crate::load_bytes(Path::new("c.yaml"), text.as_bytes(), &read).map_err(|d| d.to_string())
}

fn remediation(text: &str) -> (Campaign, Remediation) {
    let campaign = campaign(text).unwrap_or_else(|e| panic!("{e}"));
    let remediation = campaign.remediation.clone().expect("a remediation");
    (campaign, remediation)
}

fn alarm<'a>(detector: &'a str, kind: AlarmKind, service: Option<&'a str>) -> AlarmFacts<'a> {
    AlarmFacts {
        detector,
        kind,
        service,
        host: None,
        score: 0.9,
        fault_kind: None,
    }
}

const RUNBOOKS: &str = "  mode: auto
  runbooks:
    - name: thaw-frozen
      when: {fault: process-freeze, min_score: 0.5}
      diagnostics: [{collect: process-state}]
      actions: [{action: thaw}]
    - name: timeouts-of-workers
      when: {alarm: timeout, function: worker}
      actions: [{action: kill-hung-process}]
    - name: scheduler
      when: {service: nova-scheduler, detector: fp}
      actions: [{action: restart-service}]
    - name: anything-external
      when: {alarm: external}
      diagnostics: [{collect: disk-usage}]
";

#[test]
fn the_first_runbook_whose_conditions_all_hold_answers_the_alarm() {
    let (campaign, remediation) = remediation(RUNBOOKS);
    let testbed = &campaign.testbed;
    let name = |facts: &AlarmFacts<'_>| {
        remediation
            .select(testbed, facts)
            .map(|s| s.runbook.name.to_string())
    };
    let mut frozen = alarm("fp", AlarmKind::Fingerprint, Some("nova-conductor"));
    frozen.fault_kind = Some("process-freeze");
    assert_eq!(name(&frozen).as_deref(), Ok("thaw-frozen"));
    // Below the minimum score the freeze runbook passes; nothing else matches a conductor.
    frozen.score = 0.4;
    assert_eq!(name(&frozen), Err(NoMatch::NoRunbook));
    // A function is read from the inventory.
    let timeout = alarm("to", AlarmKind::Timeout, Some("nova-conductor"));
    assert_eq!(name(&timeout).as_deref(), Ok("timeouts-of-workers"));
    let agent = alarm("to", AlarmKind::Timeout, Some("nova-compute"));
    assert_eq!(name(&agent), Err(NoMatch::NoRunbook));
    // Service and detector both hold, or the runbook passes.
    let scheduler = alarm("fp", AlarmKind::Fingerprint, Some("nova-scheduler"));
    assert_eq!(name(&scheduler).as_deref(), Ok("scheduler"));
    let other_detector = alarm("ext", AlarmKind::External, Some("nova-scheduler"));
    assert_eq!(name(&other_detector).as_deref(), Ok("anything-external"));
}

#[test]
fn a_runbook_acts_only_on_a_host_the_campaign_owns() {
    let (campaign, checked) = remediation(RUNBOOKS);
    let testbed = &campaign.testbed;
    let mut facts = alarm("fp", AlarmKind::Fingerprint, Some("nova-scheduler"));
    let selected = checked.select(testbed, &facts).unwrap();
    assert_eq!(selected.host.unwrap().name.as_str(), "controller");
    facts.host = Some("elsewhere");
    assert!(matches!(
        checked.select(testbed, &facts),
        Err(NoMatch::NotOwned { reason, .. }) if reason.contains("not in the inventory")
    ));
    // A host of the inventory that the service does not run on is refused too.
    facts.host = Some("compute1");
    assert!(matches!(
        checked.select(testbed, &facts),
        Err(NoMatch::NotOwned { reason, .. }) if reason.contains("does not run on compute1")
    ));
    // A service on several hosts needs the alarm to say which.
    let (campaign, remediation) =
        remediation("  runbooks:\n    - name: any\n      actions: [{action: restart-service}]\n");
    let compute = alarm("fp", AlarmKind::Fingerprint, Some("nova-compute"));
    assert!(matches!(
        remediation.select(&campaign.testbed, &compute),
        Err(NoMatch::NotOwned { reason, .. }) if reason.contains("several hosts")
    ));
    let mut on_compute2 = compute.clone();
    on_compute2.host = Some("compute2");
    let selected = remediation.select(&campaign.testbed, &on_compute2).unwrap();
    assert_eq!(selected.host.unwrap().name.as_str(), "compute2");
    // An alarm naming no suspect cannot be acted on.
    let anonymous = alarm("fp", AlarmKind::Fingerprint, None);
    assert!(matches!(
        remediation.select(&campaign.testbed, &anonymous),
        Err(NoMatch::NotOwned { .. })
    ));
}

#[test]
fn cache_and_broker_actions_act_on_the_inventorys_cache_and_broker() {
    let (campaign, remediation) = remediation(
        "  runbooks:\n    - name: r\n      actions: [{action: flush-cache}, {action: restart-broker-app}, {action: thaw}]\n",
    );
    let testbed = &campaign.testbed;
    let suspect = testbed
        .services
        .iter()
        .find(|s| s.name.as_str() == "nova-conductor");
    let actions = &remediation.runbooks[0].actions;
    let names: Vec<_> = actions
        .iter()
        .map(|a| acted_on(a, testbed, suspect).unwrap().name.to_string())
        .collect();
    assert_eq!(names, ["memcached", "rabbitmq", "nova-conductor"]);
}

#[test]
fn defaults_are_suggest_with_a_five_second_hold_and_three_actions_per_ten_minutes() {
    let (_, remediation) =
        remediation("  runbooks:\n    - name: r\n      diagnostics: [{collect: unit-journal}]\n");
    assert_eq!(remediation.mode, Mode::Suggest);
    assert_eq!(remediation.hold, Duration::from_secs(5));
    assert_eq!(remediation.max_actions, 3);
    assert_eq!(remediation.per, Duration::from_secs(600));
}

fn governor(mode: &str, hold: &str, max: u32, per: &str) -> Governor {
    let (_, remediation) = remediation(&format!(
        "  mode: {mode}\n  hold: {hold}\n  max_actions: {max}\n  per: {per}\n  runbooks:\n    - name: r\n      actions: [{{action: thaw}}]\n"
    ));
    Governor::new(&remediation)
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[test]
fn an_action_is_refused_until_the_alarm_has_held_for_the_hold_time() {
    let mut governor = governor("auto", "5s", 3, "1m");
    assert_eq!(
        governor.admit(S(14), S(10), Phase::Fault),
        Err(Refusal::NotHeld {
            held: S(4),
            hold: S(5)
        })
    );
    assert_eq!(governor.admit(S(15), S(10), Phase::Fault), Ok(()));
}

#[test]
fn an_action_is_refused_during_a_baseline_and_outside_auto_mode() {
    let mut auto = governor("auto", "0s", 3, "1m");
    assert_eq!(
        auto.admit(S(100), S(0), Phase::Baseline),
        Err(Refusal::DuringBaseline)
    );
    assert_eq!(auto.admit(S(100), S(0), Phase::Recovery), Ok(()));
    let mut suggest = governor("suggest", "0s", 3, "1m");
    assert_eq!(
        suggest.admit(S(100), S(0), Phase::Fault),
        Err(Refusal::NotAuto(Mode::Suggest))
    );
}

#[test]
fn at_most_max_actions_run_in_any_window_of_per() {
    let mut governor = governor("auto", "0s", 2, "1m");
    assert_eq!(governor.admit(S(0), S(0), Phase::Fault), Ok(()));
    assert_eq!(governor.admit(S(30), S(0), Phase::Fault), Ok(()));
    let refused = governor.admit(S(59), S(0), Phase::Fault).unwrap_err();
    assert_eq!(
        refused,
        Refusal::TooMany {
            max_actions: 2,
            per: S(60)
        }
    );
    assert_eq!(refused.to_string(), "2 actions already ran in the last 1m");
    // The first action leaves the window a minute after it ran.
    assert_eq!(governor.admit(S(60), S(0), Phase::Fault), Ok(()));
    assert!(governor.admit(S(61), S(0), Phase::Fault).is_err());
}

#[test]
fn free_disk_paths_are_judged_by_the_tree_they_normalize_into() {
    let (_, remediation) = remediation(
        "  runbooks:\n    - name: r\n      actions: [{action: free-disk, paths: [/var/lib/glance//images/], files: 'bfly-fill-*'}]\n",
    );
    assert_eq!(
        remediation.runbooks[0].actions[0].kind,
        ActionKind::FreeDisk {
            paths: vec![PathName::new("/var/lib/glance/images").unwrap()],
            files: "bfly-fill-*".into()
        }
    );
    for hostile in [
        "/var/lib/glance/../mysql",
        "/etc",
        "/srv/../../",
        "/var/log/x/..",
    ] {
        let error = campaign(&format!(
            "  runbooks:\n    - name: r\n      actions: [{{action: free-disk, paths: ['{hostile}']}}]\n"
        ))
        .unwrap_err();
        assert!(
            error.contains("may not remove files under"),
            "{hostile}: {error}"
        );
    }
}

#[test]
fn user_commands_keep_their_arguments_as_written() {
    let (_, remediation) = remediation(
        "  runbooks:\n    - name: r\n      actions: [{command: [/usr/local/bin/repair, '--unit', 'a b; rm -rf /']}]\n",
    );
    assert_eq!(
        remediation.runbooks[0].actions[0].kind,
        ActionKind::Command {
            argv: vec![
                "/usr/local/bin/repair".into(),
                "--unit".into(),
                "a b; rm -rf /".into()
            ]
        }
    );
    let error = campaign("  runbooks:\n    - name: r\n      actions: [{command: ['$(reboot)']}]\n")
        .unwrap_err();
    assert!(
        error.contains("not a plain name or an absolute path"),
        "{error}"
    );
}
