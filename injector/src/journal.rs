//! The fault journal: JSON Lines in the run directory, each record fsync'd before the step it
//! announces. A fault's exact revert is written *before* its inject runs, so a runner that dies at
//! any point leaves enough on disk for `butterfly recover` to undo it.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::plan::{Check, FaultPlan};
use crate::remediation::ActionPlan;

/// The journal's file name inside a run directory.
pub const JOURNAL_FILE: &str = "faults.jsonl";

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Record {
    /// About to inject: the plan and the exact revert (captures substituted).
    Injecting {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The plan (host, fault, every script).
        plan: Box<FaultPlan>,
        /// The revert as it will run, captures substituted; `None` for one-shot faults.
        revert: Option<String>,
        /// The check that the host is back, captures substituted.
        verify_reverted: Option<Check>,
    },
    /// The inject ran and the fault was verified in effect.
    Injected {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Fault id.
        id: String,
    },
    /// The revert ran and the host was verified back to its prior state (or the fault is one-shot).
    Reverted {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Fault id.
        id: String,
        /// Who reverted: `runner`, `recover`.
        by: String,
        /// What the revert found, when it says: `healed by supervisor after 2.3 s` (a killed
        /// container that its supervisor restarted), `stayed down until the revert`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed: Option<String>,
        /// The remediation action that had already restored the host when the revert ran (the
        /// revert then only confirmed it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restored_by: Option<String>,
    },
    /// About to run a remediation action: the plan, and the faults in effect it restores.
    Remediating {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// The action (host, every script, the settle script for `recover`).
        action: Box<ActionPlan>,
        /// Ids of the faults in effect whose effect the action undoes.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        restores: Vec<String>,
    },
    /// A remediation action is over (done, failed, or settled by `recover`).
    Remediated {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Action id.
        id: String,
        /// Who finished it: `runner`, `recover`.
        by: String,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A revert attempt failed; the fault stays pending.
    RevertFailed {
        /// Milliseconds since the Unix epoch.
        at_ms: u64,
        /// Fault id.
        id: String,
        /// Why.
        error: String,
    },
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An open journal, shared by every fault of a run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Opens (creating when needed) the journal of a run directory.
    pub fn open(run_dir: &Path) -> Result<Journal, Error> {
        std::fs::create_dir_all(run_dir)
            .map_err(|e| Error::Journal(format!("cannot create {}: {e}", run_dir.display())))?;
        let path = run_dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::Journal(format!("cannot open {}: {e}", path.display())))?;
        Ok(Journal {
            path,
            file: Mutex::new(file),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record written so far (this run's and earlier ones').
    pub fn records(&self) -> Result<Vec<Record>, Error> {
        read(self.path.parent().unwrap_or(Path::new(".")))
    }

    /// Appends one record and fsyncs it before returning.
    pub fn append(&self, record: &Record) -> Result<(), Error> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Journal(e.to_string()))?;
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| Error::Journal("journal lock poisoned".into()))?;
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::Journal(format!("cannot write {}: {e}", self.path.display())))
    }
}

/// Reads every record of a run directory's journal. A torn last line (a crash mid-write) is
/// ignored; any other unreadable line is an error naming its line number.
pub fn read(run_dir: &Path) -> Result<Vec<Record>, Error> {
    let path = run_dir.join(JOURNAL_FILE);
    let file = File::open(&path)
        .map_err(|e| Error::Journal(format!("cannot read {}: {e}", path.display())))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Journal(format!("cannot read {}: {e}", path.display())))?;
    let mut records = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(_) if index + 1 == lines.len() => {
                tracing::warn!("ignoring a torn last line in {}", path.display());
            }
            Err(e) => {
                return Err(Error::Journal(format!(
                    "{}:{}: unreadable record: {e}",
                    path.display(),
                    index + 1
                )));
            }
        }
    }
    Ok(records)
}

/// A fault the journal says may still be in effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The plan.
    pub plan: FaultPlan,
    /// The revert to run (captures substituted).
    pub revert: Option<String>,
    /// The check that the host is back.
    pub verify_reverted: Option<Check>,
    /// Whether the inject was confirmed (false: the runner died between journal and verify).
    pub confirmed: bool,
}

/// The faults announced in `records` and not recorded as reverted, in journal order.
pub fn pending(records: &[Record]) -> Vec<Pending> {
    let mut open: BTreeMap<String, (usize, Pending)> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        match record {
            Record::Injecting {
                plan,
                revert,
                verify_reverted,
                ..
            } => {
                open.insert(
                    plan.id.clone(),
                    (
                        index,
                        Pending {
                            plan: (**plan).clone(),
                            revert: revert.clone(),
                            verify_reverted: verify_reverted.clone(),
                            confirmed: false,
                        },
                    ),
                );
            }
            Record::Injected { id, .. } => {
                if let Some((_, pending)) = open.get_mut(id) {
                    pending.confirmed = true;
                }
            }
            Record::Reverted { id, .. } => {
                open.remove(id);
            }
            Record::RevertFailed { .. }
            | Record::Remediating { .. }
            | Record::Remediated { .. } => {}
        }
    }
    let mut list: Vec<(usize, Pending)> = open.into_values().collect();
    list.sort_by_key(|(index, _)| *index);
    list.into_iter().map(|(_, pending)| pending).collect()
}

/// The remediation actions announced in `records` and never recorded as over, in journal order.
pub fn pending_actions(records: &[Record]) -> Vec<ActionPlan> {
    let mut open: Vec<ActionPlan> = Vec::new();
    for record in records {
        match record {
            Record::Remediating { action, .. } => open.push((**action).clone()),
            Record::Remediated { id, .. } => open.retain(|action| &action.id != id),
            _ => {}
        }
    }
    open
}

/// The remediation action that restored fault `fault_id` (it listed the fault and succeeded),
/// as `thaw 1a2b3c4d of runbook thaw-conductor`.
pub fn restored_by(records: &[Record], fault_id: &str) -> Option<(String, String)> {
    let mut candidates: Vec<(&ActionPlan, bool)> = Vec::new();
    for record in records {
        match record {
            Record::Remediating {
                action, restores, ..
            } if restores.iter().any(|id| id == fault_id) => candidates.push((action, false)),
            Record::Remediated {
                id,
                error: None,
                by,
                ..
            } if by == "runner" => {
                for (action, done) in &mut candidates {
                    if &action.id == id {
                        *done = true;
                    }
                }
            }
            _ => {}
        }
    }
    candidates
        .into_iter()
        .find(|(_, done)| *done)
        .map(|(action, _)| {
            (
                action.id.clone(),
                format!(
                    "{} {} of runbook {}",
                    action.action, action.id, action.runbook
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostSpec;
    use std::time::Duration;

    fn plan(id: &str) -> FaultPlan {
        FaultPlan {
            id: id.to_owned(),
            kind: "disk-fill".into(),
            host: HostSpec::local("here"),
            fault: serde_json::json!({"kind": "disk-fill"}),
            duration: Duration::from_secs(5),
            preflight: Check {
                what: "ok".into(),
                script: "true".into(),
            },
            inject: "true".into(),
            verify: Check {
                what: "ok".into(),
                script: "true".into(),
            },
            revert: Some("rm -f /tmp/x".into()),
            verify_reverted: None,
            deadman: false,
            delayer: None,
            checks_control_channel: false,
        }
    }

    fn injecting(id: &str) -> Record {
        Record::Injecting {
            at_ms: 1,
            plan: Box::new(plan(id)),
            revert: Some(format!("revert {id}")),
            verify_reverted: None,
        }
    }

    #[test]
    fn pending_lists_unreverted_faults_in_order() {
        let records = vec![
            injecting("aaaaaaaa"),
            injecting("bbbbbbbb"),
            Record::Injected {
                at_ms: 2,
                id: "bbbbbbbb".into(),
            },
            injecting("cccccccc"),
            Record::Reverted {
                at_ms: 3,
                id: "aaaaaaaa".into(),
                by: "runner".into(),
                observed: None,
                restored_by: None,
            },
            Record::RevertFailed {
                at_ms: 4,
                id: "cccccccc".into(),
                error: "host down".into(),
            },
        ];
        let open = pending(&records);
        let ids: Vec<_> = open.iter().map(|p| p.plan.id.as_str()).collect();
        assert_eq!(ids, ["bbbbbbbb", "cccccccc"]);
        assert!(open[0].confirmed);
        assert!(!open[1].confirmed);
        assert_eq!(open[1].revert.as_deref(), Some("revert cccccccc"));
    }

    #[test]
    fn journal_round_trips_and_tolerates_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        journal.append(&injecting("aaaaaaaa")).unwrap();
        journal
            .append(&Record::Injected {
                at_ms: 5,
                id: "aaaaaaaa".into(),
            })
            .unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(journal.path())
            .unwrap();
        file.write_all(b"{\"event\":\"reverted\",\"at_").unwrap();
        let records = read(dir.path()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0], injecting("aaaaaaaa"));
        assert_eq!(pending(&records).len(), 1);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_with_its_line_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(JOURNAL_FILE),
            "garbage\n{\"event\":\"injected\",\"at_ms\":1,\"id\":\"x\"}\n",
        )
        .unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(error.contains("faults.jsonl:1"), "{error}");
    }
}
