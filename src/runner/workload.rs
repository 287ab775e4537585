//! The workload engine: streams of OpenStack user commands at the campaign's rates, each recorded
//! with its outcome, latency and global request id. Servers it creates are tracked and deleted at
//! the end, whatever happened in between.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use scenarios::model::{CommandKind, Workload};

use super::openstack::{ListKind, ServerTemplate, Session, new_request_id};

/// One issued user command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRecord {
    /// The command, as written in campaigns (`server create`).
    pub command: String,
    /// Its global request id (`X-OpenStack-Request-ID`).
    pub request_id: String,
    /// When it was issued.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Timestamp,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CommandRecord {
    /// Latency in milliseconds.
    pub fn latency_ms(&self) -> f64 {
        (self.finished_at.as_microsecond() - self.started_at.as_microsecond()) as f64 / 1000.0
    }
}

/// Reads a run's `workload.jsonl` (one [`CommandRecord`] per line).
pub fn read_records(path: &Path) -> Result<Vec<CommandRecord>, String> {
    let lines = userinput::file::lines(path, userinput::file::FileKind::WORKLOAD_RECORDS)
        .map_err(|e| e.to_string())?;
    let mut records = Vec::new();
    for line in lines {
        let (number, line) = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(
            serde_json::from_str(&line).map_err(|e| format!("{}:{number}: {e}", path.display()))?,
        );
    }
    Ok(records)
}

/// Everything the workload produced so far; shared with the runner, which reads it live for
/// guardrails and at the end for statistics.
#[derive(Debug, Default)]
pub struct Records {
    records: Mutex<Vec<CommandRecord>>,
    servers: Mutex<Vec<String>>,
    /// Request id → the command as issued, from the moment it is issued, so that the live
    /// detectors can label a transaction by its first event.
    issued: Mutex<HashMap<String, Issued>>,
}

/// A command from the moment it is issued.
#[derive(Debug, Clone, Copy)]
struct Issued {
    command: &'static str,
    started_at: Timestamp,
    /// Whether it succeeded, once finished.
    succeeded: Option<bool>,
}

impl Records {
    fn issuing(&self, request_id: &str, command: &'static str, started_at: Timestamp) {
        self.issued.lock().expect("issued lock").insert(
            request_id.to_owned(),
            Issued {
                command,
                started_at,
                succeeded: None,
            },
        );
    }

    /// Forgets a command that was not issued after all.
    fn withdraw(&self, request_id: &str) {
        self.issued.lock().expect("issued lock").remove(request_id);
    }

    fn push(&self, record: CommandRecord) {
        if let Some(issued) = self
            .issued
            .lock()
            .expect("issued lock")
            .get_mut(&record.request_id)
        {
            issued.succeeded = Some(record.ok);
        }
        self.records.lock().expect("records lock").push(record);
    }

    /// A copy of every record so far.
    pub fn snapshot(&self) -> Vec<CommandRecord> {
        self.records.lock().expect("records lock").clone()
    }

    /// The commands issued and not finished yet: what each is and when it started.
    pub fn in_flight(&self) -> Vec<(&'static str, Timestamp)> {
        self.issued
            .lock()
            .expect("issued lock")
            .values()
            .filter(|issued| issued.succeeded.is_none())
            .map(|issued| (issued.command, issued.started_at))
            .collect()
    }

    fn add_server(&self, id: String) {
        self.servers.lock().expect("servers lock").push(id);
    }

    fn take_server(&self) -> Option<String> {
        let mut servers = self.servers.lock().expect("servers lock");
        (!servers.is_empty()).then(|| servers.remove(0))
    }

    fn take_all_servers(&self) -> Vec<String> {
        std::mem::take(&mut *self.servers.lock().expect("servers lock"))
    }
}

/// A running workload.
pub struct WorkloadHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    /// The records, live.
    pub records: Arc<Records>,
    session: Session,
}

fn timeout_param(params: &[(String, String)], default: Duration) -> Duration {
    params
        .iter()
        .find(|(key, _)| key == "timeout")
        .and_then(|(_, value)| scenarios::units::parse_duration(value).ok())
        .unwrap_or(default)
}

/// Starts every command stream of the workload.
pub async fn start(session: Session, workload: &Workload) -> Result<WorkloadHandle, String> {
    let (stop, stopped) = watch::channel(false);
    let records = Arc::new(Records::default());
    let mut tasks = JoinSet::new();
    for stream in &workload.commands {
        let template = if stream.command == CommandKind::ServerCreate {
            Some(Arc::new(
                session
                    .server_template(&stream.params)
                    .await
                    .map_err(|e| format!("workload `server create`: {e}"))?,
            ))
        } else {
            None
        };
        let session = session.clone();
        let records = records.clone();
        let mut stopped = stopped.clone();
        let stream = stream.clone();
        tasks.spawn(async move {
            let slots = Arc::new(Semaphore::new(stream.concurrency as usize));
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / stream.rate_per_second));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut inflight = JoinSet::new();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => break,
                }
                if *stopped.borrow() {
                    break;
                }
                // At the concurrency limit a tick is skipped rather than queued: the rate is an
                // upper bound, like a user who waits for the previous command.
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                let session = session.clone();
                let records = records.clone();
                let template = template.clone();
                let params = stream.params.clone();
                let command = stream.command;
                inflight.spawn(async move {
                    issue(&session, command, template.as_deref(), &params, &records).await;
                    drop(permit);
                });
                while inflight.try_join_next().is_some() {}
            }
            // Commands in flight finish and are recorded; none is cut off mid-way.
            while inflight.join_next().await.is_some() {}
        });
    }
    Ok(WorkloadHandle {
        stop,
        tasks,
        records,
        session,
    })
}

async fn issue(
    session: &Session,
    command: CommandKind,
    template: Option<&ServerTemplate>,
    params: &[(String, String)],
    records: &Records,
) {
    let request_id = new_request_id();
    let started_at = Timestamp::now();
    records.issuing(&request_id, command.name(), started_at);
    let result = match command {
        CommandKind::ServerCreate => {
            let Some(template) = template else {
                records.withdraw(&request_id);
                return;
            };
            let (id, result) = session
                .create_server(
                    template,
                    &request_id,
                    timeout_param(params, Duration::from_secs(60)),
                )
                .await;
            if let Some(id) = id {
                records.add_server(id);
            }
            result
        }
        CommandKind::ServerDelete => {
            // Deleting needs a server the workload made; without one there is no command to issue.
            let Some(id) = records.take_server() else {
                records.withdraw(&request_id);
                return;
            };
            let result = session
                .delete_server(
                    &id,
                    &request_id,
                    timeout_param(params, Duration::from_secs(60)),
                )
                .await;
            if result.is_err() {
                // Keep it for the final clean-up.
                records.add_server(id);
            }
            result
        }
        CommandKind::ServerList => session.list(ListKind::Servers, &request_id).await,
        CommandKind::ImageList => session.list(ListKind::Images, &request_id).await,
        CommandKind::FlavorList => session.list(ListKind::Flavors, &request_id).await,
        CommandKind::NetworkList => session.list(ListKind::Networks, &request_id).await,
    };
    records.push(CommandRecord {
        command: command.name().to_owned(),
        request_id,
        started_at,
        finished_at: Timestamp::now(),
        ok: result.is_ok(),
        error: result.err(),
    });
}

impl super::detect::Labels for Records {
    fn command(&self, id: &str) -> Option<String> {
        let issued = self.issued.lock().expect("issued lock");
        issued.get(id).map(|issued| issued.command.to_owned())
    }

    fn succeeded(&self, id: &str) -> Option<bool> {
        self.issued.lock().expect("issued lock").get(id)?.succeeded
    }
}

impl WorkloadHandle {
    /// Stops issuing commands and waits for those in flight.
    pub async fn stop(mut self) -> (Vec<CommandRecord>, Cleanup) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let servers = self.records.take_all_servers();
        (
            self.records.snapshot(),
            Cleanup {
                session: self.session,
                servers,
            },
        )
    }
}

/// Servers the workload left behind, to delete.
pub struct Cleanup {
    session: Session,
    /// Their ids.
    pub servers: Vec<String>,
}

impl Cleanup {
    /// Deletes every leftover server; returns those that could not be deleted.
    pub async fn run(self) -> Vec<(String, String)> {
        let mut tasks = JoinSet::new();
        for id in self.servers {
            let session = self.session.clone();
            tasks.spawn(async move {
                let result = session.purge_server(&id, Duration::from_secs(120)).await;
                (id, result)
            });
        }
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((id, Err(error))) = joined {
                failed.push((id, error));
            }
        }
        failed
    }
}
