//! Stacking OpenStack on freshly booted hosts, as DevStack's `stack.sh` would: the controller's
//! databases, broker users, Keystone and catalog (the image's `butterfly-stack.sh`), then
//! nova-compute on every compute host, then cell discovery once every hypervisor has registered.

use std::time::{Duration, Instant};

use crate::Record;
use crate::error::{Result, step_failed};
use crate::health::{self, Api};
use crate::hosts;
use crate::progress::{Progress, run_step};
use crate::sys;
use crate::topology::StateDir;

/// How long the compute hosts may take to register their compute nodes.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs every stacking step on the booted hosts of `record`.
pub fn stack(record: &Record, state: &StateDir, progress: &Progress) -> Result<()> {
    let controller = record.topology.controller().name.clone();
    run_step(
        progress,
        "stack the controller (databases, Keystone, catalog, APIs)",
        |step| {
            let script = match record.layout {
                crate::Layout::Devstack => "/usr/local/sbin/butterfly-stack.sh",
                crate::Layout::Kolla => crate::kolla::STACK_SCRIPT,
            };
            let mut command = hosts::ssh(state, &controller, script);
            let output = sys::output_with_lines(step.name(), &mut command, |line| {
                // The script announces each stage as `stack: …`; show it beside the spinner.
                if let Some(stage) = line.strip_prefix("stack: ") {
                    step.detail(stage);
                }
            })?;
            if output.status.success() {
                return Ok(());
            }
            Err(step_failed(
                step.name(),
                sys::failure_text(&command, &output),
            ))
        },
    )?;
    if record.rest_proxy {
        run_step(
            progress,
            "route API calls through the recording REST proxy",
            |step| {
                let mut command = hosts::ssh(
                    state,
                    &controller,
                    &crate::assets::route_command(record.layout),
                );
                sys::run(step.name(), &mut command).map(drop)
            },
        )?;
    }
    run_step(
        progress,
        "start nova-compute on the compute hosts",
        |step| {
            let start = format!("systemctl start {}", record.layout.unit("devstack@n-cpu"));
            for host in record.topology.computes() {
                let mut command = hosts::ssh(state, &host.name, &start);
                sys::run(step.name(), &mut command)?;
            }
            Ok(())
        },
    )?;
    run_step(
        progress,
        "register the hypervisors (cell_v2 discover_hosts)",
        |step| {
            wait_registered(record, state, step.name())?;
            let mut command = hosts::ssh(
                state,
                &controller,
                "/opt/openstack/bin/nova-manage --config-file /etc/nova/nova.conf cell_v2 discover_hosts",
            );
            sys::run(step.name(), &mut command).map(drop)
        },
    )
}

/// Waits until every compute host shows up as a hypervisor.
fn wait_registered(record: &Record, state: &StateDir, step: &str) -> Result<()> {
    let secrets = health::secrets(record)?;
    let api = Api::new(&record.topology)?;
    let deadline = Instant::now() + REGISTER_TIMEOUT;
    loop {
        let missing: Vec<String> = match api
            .token(&secrets.admin)
            .and_then(|token| api.nova(&token, "/os-hypervisors"))
        {
            Ok(list) => {
                let mut health = health::Health::default();
                health::check_hypervisors(&mut health, &record.topology, &list);
                health.failures()
            }
            Err(error) => vec![error],
        };
        if missing.is_empty() {
            return Ok(());
        }
        let last = missing.join("; ");
        if Instant::now() > deadline {
            let mut detail = format!(
                "nova-compute did not register within {} s ({last})",
                REGISTER_TIMEOUT.as_secs()
            );
            let unit = record.layout.unit("devstack@n-cpu");
            for host in record.topology.computes() {
                detail.push_str(&format!(
                    "\nlast log lines of {unit} on {}:\n{}",
                    host.name,
                    health::journal_tail(state, &host.name, &unit)
                ));
            }
            return Err(step_failed(step, detail));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}
