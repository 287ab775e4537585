//! The host-side safety checks: what the campaign cannot know (where a path really leads, which
//! process a name matches) is refused at preflight, before anything is created on the host.
//!
//! Needs `butterfly testbed up --hosts-only`; run with
//! `cargo test -p injector --test testbed_safety -- --ignored --test-threads=1`.

mod common;

use std::time::Duration;

use common::*;
use scenarios::fault::{Fault, FillAmount, Signal};
use scenarios::units::{Bytes, PathName, ProcessName};

const SECONDS: Duration = Duration::from_secs(60);

fn fill(path: &str) -> Fault {
    Fault::DiskFill {
        path: PathName::new(path).unwrap(),
        amount: FillAmount::Size(Bytes(1 << 20)),
        force: false,
    }
}

/// Injects a plan that must fail at preflight; returns the preflight's message.
fn refused_at_preflight(bench: &Bench, plan: &injector::FaultPlan) -> String {
    match bench.runtime.block_on(bench.injector.inject(plan)) {
        Err(error @ injector::Error::Preflight { .. }) => error.to_string(),
        Err(other) => panic!("{} failed, but not at preflight: {other}", plan.kind),
        Ok(active) => {
            bench.revert(&active);
            panic!(
                "{} was injected but must be refused at preflight",
                plan.kind
            )
        }
    }
}

#[test]
#[ignore = "needs the local testbed"]
fn a_disk_fill_through_a_symlink_into_etc_is_refused_at_preflight_and_leaves_nothing() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let link = format!("/srv/bfly-link-{}", tag());
    must(&host.name, &format!("ln -s /etc {link}"));
    let plan = plan(&fill(&link), &host, None, SECONDS);
    let message = refused_at_preflight(&bench, &plan);
    let left = observe(&host.name, "ls -a /etc | grep -c bfly-fill").1;
    must(&host.name, &format!("rm -f {link}"));
    assert!(
        message.contains(&format!("refusing to fill {link}: it resolves to /etc")),
        "{message}"
    );
    assert_eq!(left.trim(), "0", "a fill file was left in /etc");
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed"]
fn a_disk_fill_on_a_bind_mount_of_a_system_filesystem_is_refused_at_preflight() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let mount = format!("/srv/bfly-bind-{}", tag());
    must(
        &host.name,
        &format!("mkdir {mount} && mount --bind /var/log {mount}"),
    );
    let plan = plan(&fill(&mount), &host, None, SECONDS);
    let message = refused_at_preflight(&bench, &plan);
    let left = observe(&host.name, "ls -a /var/log | grep -c bfly-fill").1;
    must(&host.name, &format!("umount {mount} && rmdir {mount}"));
    assert!(
        message.contains(&format!(
            "refusing to fill {mount}: it lies on the filesystem mounted at {mount}"
        )),
        "{message}"
    );
    assert_eq!(left.trim(), "0", "a fill file was left in /var/log");
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed"]
fn a_process_kill_matching_the_injectors_own_shell_is_refused_at_preflight() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    // A bystander named `sh` too: the refusal spares every match, not only the injector's own.
    let bystander = TestUnit::start(&host.name, &tag(), "while :; do sleep 1; done");
    let kill_sh = Fault::ProcessKill {
        signal: Signal::Term,
        process: Some(ProcessName::new("sh").unwrap()),
    };
    let plan = plan(&kill_sh, &host, None, SECONDS);
    let message = refused_at_preflight(&bench, &plan);
    assert!(
        message.contains("carries the session of the injector"),
        "{message}"
    );
    assert!(bystander.is_active(), "the bystander sh was killed");
    bench.assert_all_clean(&[&host.name]);
}
