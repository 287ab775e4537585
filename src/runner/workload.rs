//! The workload engine: streams of OpenStack user commands at the campaign's rates, each recorded
//! with its outcome, latency and global request id. What it creates (servers, volumes, networks,
//! images, …) is tracked in [`Pools`] and deleted at the end, whatever happened in between.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fingerprint::engine::Input;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use scenarios::model::{CommandKind, Workload, WorkloadCommand};

use super::openstack::{ListKind, ServerTemplate, Session, new_request_id};
use super::resources::{Entry, ImageUpload, Kind, Pools};

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
    /// What the workload made and has not deleted.
    pools: Pools,
    /// Request id → the command as issued, from the moment it is issued, so that the live
    /// detectors can label a transaction by its first event.
    issued: Mutex<HashMap<String, Issued>>,
    /// Where the labels go as inputs of the live detectors (the command issued, withdrawn,
    /// finished), when they run.
    labels: Option<mpsc::UnboundedSender<Input>>,
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
    /// Tells the live detectors, if they run.
    fn label(&self, input: Input) {
        if let Some(labels) = &self.labels {
            // The detectors stopped first only when the run is over: nothing left to label.
            let _ = labels.send(input);
        }
    }

    fn issuing(&self, request_id: &str, command: &'static str, started_at: Timestamp) {
        // Before the request is sent: the detectors know the command by its first event.
        self.label(Input::Issued {
            at_us: started_at.as_microsecond(),
            request_id: request_id.to_owned(),
            command: command.to_owned(),
        });
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
        self.label(Input::Withdrawn {
            at_us: Timestamp::now().as_microsecond(),
            request_id: request_id.to_owned(),
        });
    }

    fn push(&self, record: CommandRecord) {
        self.label(Input::Finished {
            at_us: record.finished_at.as_microsecond(),
            request_id: record.request_id.clone(),
            succeeded: record.ok,
        });
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

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The default wait of the commands that wait for a state.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// What a command stream resolves once, before its first command: names to ids, the bytes an
/// image upload sends.
enum Prepared {
    /// Nothing to resolve.
    Nothing,
    /// `server create`'s flavor, image and network.
    Server(ServerTemplate),
    /// The network named by `port create`'s or `floating ip create`'s `network`, or the
    /// security group of `security group rule create`.
    Resolved(String),
    /// `image create`'s bytes and formats.
    Image(ImageUpload),
}

async fn prepare(session: &Session, stream: &WorkloadCommand) -> Result<Prepared, String> {
    let what =
        |e: super::openstack::CloudError| format!("workload `{}`: {e}", stream.command.name());
    let params = &stream.params;
    Ok(match stream.command {
        CommandKind::ServerCreate => {
            Prepared::Server(session.server_template(params).await.map_err(what)?)
        }
        CommandKind::PortCreate => match param(params, "network") {
            Some(name) => {
                Prepared::Resolved(session.find_neutron("network", name).await.map_err(what)?)
            }
            // Without a named network, each port goes into a network the workload made.
            None => Prepared::Nothing,
        },
        CommandKind::FloatingIpCreate => {
            let name = param(params, "network").unwrap_or("public");
            Prepared::Resolved(session.find_neutron("network", name).await.map_err(what)?)
        }
        CommandKind::SecurityGroupRuleCreate => {
            let name = param(params, "security_group").unwrap_or("default");
            Prepared::Resolved(
                session
                    .find_neutron("security_group", name)
                    .await
                    .map_err(what)?,
            )
        }
        CommandKind::ImageCreate => {
            let size = param(params, "size")
                .map(scenarios::units::Bytes::parse)
                .transpose()
                .map_err(|e| format!("workload `image create`: {e}"))?
                .map_or(1024 * 1024, |b| b.0);
            let size =
                usize::try_from(size).map_err(|_| "workload `image create`: size too large")?;
            Prepared::Image(ImageUpload {
                bytes: bytes::Bytes::from(vec![0u8; size]),
                disk_format: param(params, "disk_format").unwrap_or("raw").to_owned(),
                container_format: param(params, "container_format")
                    .unwrap_or("bare")
                    .to_owned(),
            })
        }
        _ => Prepared::Nothing,
    })
}

/// Starts every command stream of the workload; `labels` (for the live detectors) learns each
/// command as it is issued, withdrawn and finished.
pub async fn start(
    session: Session,
    workload: &Workload,
    labels: Option<mpsc::UnboundedSender<Input>>,
) -> Result<WorkloadHandle, String> {
    let (stop, stopped) = watch::channel(false);
    let records = Arc::new(Records {
        labels,
        ..Records::default()
    });
    let mut tasks = JoinSet::new();
    // Every stream is prepared before the first starts: a name that does not resolve fails the
    // start before any command has made something the clean-up would have to find.
    let mut prepared = Vec::new();
    for stream in &workload.commands {
        prepared.push(Arc::new(prepare(&session, stream).await?));
    }
    for (stream, prepared) in workload.commands.iter().zip(prepared) {
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
                let prepared = prepared.clone();
                let params = stream.params.clone();
                let command = stream.command;
                inflight.spawn(async move {
                    issue(&session, command, &prepared, &params, &records).await;
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

/// A command's outcome: `None` when there was nothing to act on (no server to delete, no volume
/// to attach), so no command was issued.
type Outcome = Option<Result<(), String>>;

/// Records a resource a create made, also when it failed later (e.g. never became available),
/// so that the clean-up deletes it.
fn created(
    pools: &Pools,
    kind: Kind,
    parents: Vec<String>,
    (id, result): (Option<String>, Result<(), String>),
) -> Outcome {
    if let Some(id) = id {
        pools.add(kind, Entry { id, parents });
    }
    Some(result)
}

fn created_id(
    pools: &Pools,
    kind: Kind,
    parents: Vec<String>,
    result: Result<String, String>,
) -> Outcome {
    match result {
        Ok(id) => created(pools, kind, parents, (Some(id), Ok(()))),
        Err(error) => Some(Err(error)),
    }
}

/// Puts `entry` back when the command failed, so that the clean-up still sees it.
fn keep_on_failure(pools: &Pools, kind: Kind, entry: Entry, result: Result<(), String>) -> Outcome {
    if result.is_err() {
        pools.add(kind, entry);
    }
    Some(result)
}

async fn run_command(
    session: &Session,
    command: CommandKind,
    prepared: &Prepared,
    params: &[(String, String)],
    pools: &Pools,
    rid: &str,
) -> Outcome {
    let timeout = timeout_param(params, COMMAND_TIMEOUT);
    let prefix = param(params, "name_prefix").unwrap_or("bfly");
    let resolved = match prepared {
        Prepared::Resolved(id) => Some(id.as_str()),
        _ => None,
    };
    match command {
        CommandKind::ServerCreate => {
            let Prepared::Server(template) = prepared else {
                return None;
            };
            let outcome = session.create_server(template, rid, timeout).await;
            created(pools, Kind::Server, Vec::new(), outcome)
        }
        CommandKind::ServerDelete => {
            // Deleting needs a server the workload made (and no volume on it).
            let server = pools.take(Kind::Server, &[Kind::Attachment])?;
            let result = session.delete_server(&server.id, rid, timeout).await;
            keep_on_failure(pools, Kind::Server, server, result)
        }
        CommandKind::ServerList => Some(session.list(ListKind::Servers, rid).await),
        CommandKind::ImageList => Some(session.list(ListKind::Images, rid).await),
        CommandKind::FlavorList => Some(session.list(ListKind::Flavors, rid).await),
        CommandKind::NetworkList => Some(session.list(ListKind::Networks, rid).await),
        CommandKind::VolumeCreate => {
            let size = param(params, "size")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            let outcome = session.create_volume(size, prefix, rid, timeout).await;
            created(pools, Kind::Volume, Vec::new(), outcome)
        }
        CommandKind::VolumeDelete => {
            let volume = pools.take(Kind::Volume, &[Kind::Attachment, Kind::Snapshot])?;
            let result = session.delete_volume(&volume.id, rid, timeout).await;
            keep_on_failure(pools, Kind::Volume, volume, result)
        }
        CommandKind::ServerAddVolume => {
            // Both are leased for the attach and go back to their pools whatever happens.
            let server = pools.take(Kind::Server, &[])?;
            let Some(volume) = pools.take(Kind::Volume, &[Kind::Attachment]) else {
                pools.add(Kind::Server, server);
                return None;
            };
            let result = session
                .attach_volume(&server.id, &volume.id, rid, timeout)
                .await;
            // A failed attach may still have left an attachment: the clean-up detaches it.
            pools.add(
                Kind::Attachment,
                Entry {
                    id: volume.id.clone(),
                    parents: vec![server.id.clone(), volume.id.clone()],
                },
            );
            pools.add(Kind::Server, server);
            pools.add(Kind::Volume, volume);
            Some(result)
        }
        CommandKind::ServerRemoveVolume => {
            let attachment = pools.take(Kind::Attachment, &[])?;
            // The volume is leased too: without its attachment entry it would look free to
            // attach or delete while it is still detaching.
            let volume = pools.take_id(Kind::Volume, &attachment.id);
            let result = session
                .detach_volume(&attachment.parents[0], &attachment.id, rid, timeout)
                .await;
            if let Some(volume) = volume {
                pools.add(Kind::Volume, volume);
            }
            keep_on_failure(pools, Kind::Attachment, attachment, result)
        }
        CommandKind::VolumeSnapshotCreate => {
            let volume = pools.take(Kind::Volume, &[Kind::Attachment])?;
            let outcome = session
                .create_snapshot(&volume.id, prefix, rid, timeout)
                .await;
            let parents = vec![volume.id.clone()];
            pools.add(Kind::Volume, volume);
            created(pools, Kind::Snapshot, parents, outcome)
        }
        CommandKind::VolumeSnapshotDelete => {
            let snapshot = pools.take(Kind::Snapshot, &[])?;
            let result = session.delete_snapshot(&snapshot.id, rid, timeout).await;
            keep_on_failure(pools, Kind::Snapshot, snapshot, result)
        }
        CommandKind::NetworkCreate => {
            let result = session.create_network(prefix, rid).await;
            created_id(pools, Kind::Network, Vec::new(), result)
        }
        CommandKind::NetworkDelete => {
            let network = pools.take(
                Kind::Network,
                &[Kind::Subnet, Kind::Port, Kind::RouterInterface],
            )?;
            let result = session
                .delete_network_resource(Kind::Network, &network.id, rid)
                .await;
            keep_on_failure(pools, Kind::Network, network, result)
        }
        CommandKind::SubnetCreate => {
            let network = pools.take(Kind::Network, &[])?;
            let result = session.create_subnet(&network.id, prefix, pools, rid).await;
            let parents = vec![network.id.clone()];
            pools.add(Kind::Network, network);
            created_id(pools, Kind::Subnet, parents, result)
        }
        CommandKind::SubnetDelete => {
            let subnet = pools.take(Kind::Subnet, &[])?;
            let result = session
                .delete_network_resource(Kind::Subnet, &subnet.id, rid)
                .await;
            keep_on_failure(pools, Kind::Subnet, subnet, result)
        }
        CommandKind::PortCreate => match resolved {
            Some(network) => {
                let result = session.create_port(network, prefix, rid).await;
                created_id(pools, Kind::Port, Vec::new(), result)
            }
            None => {
                let network = pools.take(Kind::Network, &[])?;
                let result = session.create_port(&network.id, prefix, rid).await;
                let parents = vec![network.id.clone()];
                pools.add(Kind::Network, network);
                created_id(pools, Kind::Port, parents, result)
            }
        },
        CommandKind::PortDelete => {
            let port = pools.take(Kind::Port, &[])?;
            let result = session
                .delete_network_resource(Kind::Port, &port.id, rid)
                .await;
            keep_on_failure(pools, Kind::Port, port, result)
        }
        CommandKind::RouterCreate => {
            let result = session.create_router(prefix, rid).await;
            created_id(pools, Kind::Router, Vec::new(), result)
        }
        CommandKind::RouterDelete => {
            let router = pools.take(Kind::Router, &[])?;
            let interfaces = pools.children(Kind::RouterInterface, &router.id);
            let subnets: Vec<String> = interfaces.iter().map(|e| e.id.clone()).collect();
            let (removed, result) = session.delete_router(&router.id, &subnets, rid).await;
            for subnet in removed {
                // Off the router, the subnet is a plain workload subnet again.
                if let Some(interface) = pools.take_id(Kind::RouterInterface, &subnet) {
                    let network = interface.parents.get(1).cloned().into_iter().collect();
                    pools.add(
                        Kind::Subnet,
                        Entry {
                            id: interface.id,
                            parents: network,
                        },
                    );
                }
            }
            keep_on_failure(pools, Kind::Router, router, result)
        }
        CommandKind::RouterAddSubnet => {
            let router = pools.take(Kind::Router, &[])?;
            let Some(subnet) = pools.take(Kind::Subnet, &[]) else {
                pools.add(Kind::Router, router);
                return None;
            };
            let result = session
                .router_interface(&router.id, &subnet.id, true, rid)
                .await;
            // Also after a failure: a timed-out PUT may still have added the interface (measured
            // under load), and the clean-up's removal takes a missing one as done.
            let mut parents = vec![router.id.clone()];
            parents.extend(subnet.parents.first().cloned());
            pools.add(
                Kind::RouterInterface,
                Entry {
                    id: subnet.id,
                    parents,
                },
            );
            pools.add(Kind::Router, router);
            Some(result)
        }
        CommandKind::FloatingIpCreate => {
            let network = resolved?;
            let result = session.create_floating_ip(network, rid).await;
            created_id(pools, Kind::FloatingIp, Vec::new(), result)
        }
        CommandKind::FloatingIpDelete => {
            let ip = pools.take(Kind::FloatingIp, &[])?;
            let result = session
                .delete_network_resource(Kind::FloatingIp, &ip.id, rid)
                .await;
            keep_on_failure(pools, Kind::FloatingIp, ip, result)
        }
        CommandKind::ImageCreate => {
            let Prepared::Image(image) = prepared else {
                return None;
            };
            let outcome = session.create_image(image, prefix, rid, timeout).await;
            created(pools, Kind::Image, Vec::new(), outcome)
        }
        CommandKind::ImageDelete => {
            let image = pools.take(Kind::Image, &[])?;
            let result = session.delete_image(&image.id, rid).await;
            keep_on_failure(pools, Kind::Image, image, result)
        }
        CommandKind::TokenIssue => Some(session.issue_token(rid).await),
        CommandKind::SecurityGroupRuleCreate => {
            let group = resolved?;
            let result = session.create_security_group_rule(group, pools, rid).await;
            created_id(pools, Kind::SecurityGroupRule, Vec::new(), result)
        }
    }
}

async fn issue(
    session: &Session,
    command: CommandKind,
    prepared: &Prepared,
    params: &[(String, String)],
    records: &Records,
) {
    let request_id = new_request_id();
    let started_at = Timestamp::now();
    records.issuing(&request_id, command.name(), started_at);
    let Some(result) = run_command(
        session,
        command,
        prepared,
        params,
        &records.pools,
        &request_id,
    )
    .await
    else {
        records.withdraw(&request_id);
        return;
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

impl WorkloadHandle {
    /// Stops issuing commands and waits for those in flight.
    pub async fn stop(mut self) -> (Vec<CommandRecord>, Cleanup) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let leftovers = self.records.pools.drain();
        (
            self.records.snapshot(),
            Cleanup {
                session: self.session,
                leftovers,
            },
        )
    }
}

/// What the workload left behind, to delete.
pub struct Cleanup {
    session: Session,
    /// The resources, in deletion order.
    pub leftovers: Vec<(Kind, Entry)>,
}

impl Cleanup {
    /// Deletes every leftover resource, one kind after the other (what hangs on a resource goes
    /// before it), those of one kind at once; returns those that could not be deleted.
    pub async fn run(self) -> Vec<(Kind, String, String)> {
        let mut failed = Vec::new();
        let mut leftovers = self.leftovers.into_iter().peekable();
        while let Some((kind, first)) = leftovers.next() {
            let mut batch = vec![first];
            while let Some((_, entry)) = leftovers.next_if(|(next, _)| *next == kind) {
                batch.push(entry);
            }
            let mut tasks = JoinSet::new();
            for entry in batch {
                let session = self.session.clone();
                tasks.spawn(async move {
                    let result = session.purge(kind, &entry, Duration::from_secs(120)).await;
                    (entry.id, result)
                });
            }
            while let Some(joined) = tasks.join_next().await {
                if let Ok((id, Err(error))) = joined {
                    failed.push((kind, id, error));
                }
            }
        }
        failed
    }
}
