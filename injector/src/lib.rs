//! The injector owns everything that touches a target host: transports (SSH, local), the fault
//! catalog (preflight, inject, verify, revert, verify-reverted for each fault kind), and the journal
//! that guarantees every fault is reverted.
//!
//! Data comes in as validated faults from the `scenarios` crate ([`scenarios::fault::Fault`] plus
//! a target [`HostSpec`], an optional [`scenarios::model::ServiceRef`] and a duration). The
//! [`catalog`] turns them into a [`FaultPlan`] (pure data: shell scripts built from quoted argv,
//! see [`shell`]), which `--dry-run` prints ([`FaultPlan::dry_run`]) and the [`Injector`] runs
//! over a [`transport::Connections`] pool. Every step is journaled ([`journal`]) in the run
//! directory; [`recover`] reverts whatever a dead runner left behind. Remediation actions
//! ([`remediation`]) are planned, run and journaled the same way. Services in containers
//! (Docker/Podman, LXC) are reached as [`runtime`] describes.
#![warn(missing_docs)]

pub mod catalog;
pub mod engine;
pub mod host;
pub mod journal;
pub mod plan;
pub mod remediation;
pub mod runtime;
pub mod shell;
pub mod transport;

use std::time::Duration;

pub use catalog::{DelayBackend, FaultInput, PlanOptions, new_fault_id};
pub use engine::{Active, EngineSettings, Injector, Prepared, Recovered, recover, shutdown_signal};
pub use host::{HostSpec, Reach, SshSpec};
pub use journal::Journal;
pub use plan::{DryRun, FaultPlan};
pub use remediation::{ActionDone, ActionInput, ActionPlan, DiagnosticPlan};

/// Everything that can go wrong in the injector.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The fault or its target is invalid for this kind.
    #[error("invalid fault: {0}")]
    Invalid(String),
    /// A destructive target was refused (needs `allow_destructive`).
    #[error("refused: {0}")]
    Refused(String),
    /// The host key is unknown or changed.
    #[error(
        "host key of {host} ({address}) is not trusted by {known_hosts}; the server offers {offered}. \
         Verify the fingerprint out of band and add it to known_hosts"
    )]
    HostKey {
        /// Host name.
        host: String,
        /// Address and port.
        address: String,
        /// The fingerprints the server offers.
        offered: String,
        /// The known_hosts file consulted.
        known_hosts: String,
    },
    /// No SSH connection.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// Host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// A command did not finish in time.
    #[error("{host}: no answer within {after:?} to: {command}")]
    Timeout {
        /// Host name.
        host: String,
        /// The timeout.
        after: Duration,
        /// The command line.
        command: String,
    },
    /// Running a command failed at the transport level.
    #[error("transport: {0}")]
    Transport(String),
    /// The host cannot do the fault.
    #[error("{kind} on {host}: preflight failed: expected that {what}: {output}")]
    Preflight {
        /// Host name.
        host: String,
        /// Fault kind.
        kind: String,
        /// What should have held.
        what: String,
        /// What the host said.
        output: String,
    },
    /// The inject command failed (the fault was reverted).
    #[error("{kind} on {host}: inject failed (reverted): {output}")]
    Inject {
        /// Host name.
        host: String,
        /// Fault kind.
        kind: String,
        /// What the host said.
        output: String,
    },
    /// The fault was not observed in effect (it was reverted).
    #[error("{kind} on {host}: not in effect (reverted): expected that {what}: {output}")]
    Verify {
        /// Host name.
        host: String,
        /// Fault kind.
        kind: String,
        /// What should have held.
        what: String,
        /// The last observation.
        output: String,
    },
    /// The revert failed or the host did not come back; the fault stays pending in the journal.
    #[error("{kind} on {host}: revert failed (run `butterfly recover`): {output}")]
    Revert {
        /// Host name.
        host: String,
        /// Fault kind.
        kind: String,
        /// What went wrong.
        output: String,
    },
    /// A remediation action failed or its check did not hold.
    #[error("{action} on {host}: remediation failed: {output}")]
    Remediation {
        /// Host name.
        host: String,
        /// Action name.
        action: String,
        /// What went wrong.
        output: String,
    },
    /// The journal cannot be read or written.
    #[error("journal: {0}")]
    Journal(String),
}
