//! The runner's wiring of the detectors: the detection engine ([`fingerprint::engine`]) runs
//! live beside the tracer, fed its updates, its signals and the run's phases with the wall clock,
//! and its alarms go to the run's alarm file as they fire; external command detectors and alarm
//! files run after the run. All produce the same alarm format.
//!
//! The engine owns every rule; this module builds it from the campaign (its built-in detectors,
//! their fingerprint store, the inventory's shared services) and drives it.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::openstack::USER_AGENT;
pub use fingerprint::engine::Phase;
use fingerprint::engine::{Engine, Function, Input, Roles, ServiceRole};
use fingerprint::store::Store;
use reports::metrics::RunMetrics;
use reports::model as rm;
use scenarios::model::{Campaign, DetectorSource, ServiceFunction};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracer::event::{Event, Transaction};
use tracer::pipeline::Update;
use userinput::file::FileKind;

/// How often the live timeout detector is polled.
pub const POLL: Duration = Duration::from_millis(100);

/// Names an alarm after the campaign's detector.
fn named(mut alarm: rm::Alarm, detector: &str) -> rm::Alarm {
    alarm.detector = detector.to_owned();
    alarm
}

/// The campaign's built-in detectors, or `None` when it has none, starting from the
/// fingerprint store a built-in detector names (`fingerprints:`, already resolved against the
/// campaign file), else from an empty one.
///
/// The two built-in detectors share one store, so they may not name different files. A store
/// that cannot be loaded is an error naming its path: the run must not start (nor inject a
/// fault) with detectors that silently know less than the campaign says.
pub fn engine_of(campaign: &Campaign) -> Result<Option<Engine>, String> {
    let builtin = |kind: &str| {
        campaign.detectors.iter().find_map(|d| match &d.source {
            DetectorSource::Builtin {
                builtin,
                fingerprints,
            } if builtin == kind => Some((d.name.as_str(), fingerprints.as_deref())),
            _ => None,
        })
    };
    let (fingerprint, timeout) = (builtin("fingerprint"), builtin("timeout"));
    let mut stores = [fingerprint, timeout]
        .into_iter()
        .flatten()
        .filter_map(|(name, path)| Some((name, path?)));
    let store = match (stores.next(), stores.next()) {
        (Some((first, one)), Some((second, other))) if one != other => {
            return Err(format!(
                "the built-in detectors \"{first}\" and \"{second}\" name different fingerprint stores ({} and {}); they share one",
                one.display(),
                other.display()
            ));
        }
        (Some((name, path)), _) => Store::load(path).map_err(|error| {
            format!("detector \"{name}\": cannot use its fingerprint store: {error}")
        })?,
        (None, _) => Store::default(),
    };
    let name = |detector: Option<(&str, _)>| detector.map(|(name, _)| name.to_owned());
    Ok(
        Engine::seeded(name(fingerprint), name(timeout), store).map(|builtin| {
            builtin
                .with_roles(roles_of(campaign))
                .with_workload_agent(USER_AGENT)
        }),
    )
}

/// The engine's roles table: the inventory's services with their `function:` and hosts.
pub fn roles_of(campaign: &Campaign) -> Roles {
    roles_of_testbed(&campaign.testbed)
}

/// The roles table of an inventory (a campaign's testbed, or an inventory file of its own).
pub fn roles_of_testbed(testbed: &scenarios::model::Testbed) -> Roles {
    let services = testbed.services.iter().map(|service| ServiceRole {
        service: service.name.to_string(),
        function: service.function.map(|function| match function {
            ServiceFunction::Api => Function::Api,
            ServiceFunction::Worker => Function::Worker,
            ServiceFunction::Database => Function::Database,
            ServiceFunction::Broker => Function::Broker,
            ServiceFunction::Cache => Function::Cache,
            ServiceFunction::Agent => Function::Agent,
        }),
        hosts: testbed
            .hosts_of(service)
            .iter()
            .map(|host| host.name.to_string())
            .collect(),
    });
    Roles::new(services.collect())
}

/// What the live detectors produced over a run.
#[derive(Debug, Default)]
pub struct Detected {
    /// Every alarm, in time order, named after the campaign's detector.
    pub alarms: Vec<rm::Alarm>,
    /// Per repetition (in run order), failing transactions aligned with their nearest variant.
    pub divergences: Vec<Vec<rm::TransactionDivergence>>,
}

/// What the tracer tells the live detectors besides its updates.
#[derive(Debug, Default)]
pub struct TracerSignals {
    /// The AMQP capture's link to the broker (`Some(since_us)` while lost).
    pub broker_link: Option<watch::Receiver<Option<i64>>>,
    /// When a REST record stream last reconnected (µs since the epoch).
    pub rest_resumed: Option<watch::Receiver<Option<i64>>>,
}

/// The built-in detectors running beside the tracer.
pub struct LiveDetectors {
    task: JoinHandle<Result<Detected, String>>,
}

/// The engine's inputs as the live detectors fed them, one JSON object a line
/// ([`fingerprint::engine::Input`]), in the run directory: what `diagnose --replay` feeds again.
pub const ENGINE_INPUT_FILE: &str = "engine-input.jsonl";
/// What rebuilds the engine besides its store ([`fingerprint::engine::EngineSetup`]).
pub const ENGINE_SETUP_FILE: &str = "engine.json";
/// The fingerprint store the engine started from.
pub const ENGINE_STORE_FILE: &str = "engine-store.json";

/// Writes the engine's inputs as they are fed: buffered, flushed at every tick (a crash loses
/// a tick's worth), and bounded by what `diagnose --replay` reads (a trace file's limits). A
/// recording that cannot go on stops with a warning; the run goes on.
struct Recorder {
    file: Option<BufWriter<File>>,
    path: std::path::PathBuf,
    written: u64,
}

impl Recorder {
    fn create(path: &Path) -> Result<Recorder, String> {
        let file = File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        Ok(Recorder {
            file: Some(BufWriter::new(file)),
            path: path.to_owned(),
            written: 0,
        })
    }

    fn record(&mut self, input: &Input) {
        let Some(file) = &mut self.file else {
            return;
        };
        let mut line = serde_json::to_vec(input).expect("an input serializes");
        line.push(b'\n');
        let kind = FileKind::TRACE;
        let size = line.len() as u64;
        let result = if size > kind.line_limit || self.written + size > kind.limit {
            Err(format!(
                "it reached the limit of {kind} ({} in all, {} a line)",
                userinput::file::size_in_words(kind.limit),
                userinput::file::size_in_words(kind.line_limit)
            ))
        } else {
            file.write_all(&line)
                .and_then(|()| match input {
                    Input::Tick { .. } => file.flush(),
                    _ => Ok(()),
                })
                .map_err(|e| e.to_string())
        };
        match result {
            Ok(()) => self.written += size,
            Err(why) => {
                let _ = file.flush();
                eprintln!(
                    "butterfly: {} is no longer recorded ({why}): a replay of this run stops there",
                    self.path.display()
                );
                self.file = None;
            }
        }
    }

    fn finish(&mut self) {
        if let Some(mut file) = self.file.take()
            && let Err(e) = file.flush()
        {
            eprintln!("butterfly: writing {}: {e}", self.path.display());
        }
    }
}

impl LiveDetectors {
    /// Runs `builtin` on the pipeline's `updates` until they end (when the tracer stops), fed
    /// the workload's `labels` as they come, appending each alarm to the run directory's alarm
    /// file as it fires and counting it in `metrics`. Every input it feeds the engine is recorded
    /// in `run_dir` ([`ENGINE_INPUT_FILE`], with [`ENGINE_SETUP_FILE`] and the store it starts
    /// from), so the run can be replayed.
    pub fn spawn(
        mut builtin: Engine,
        mut updates: mpsc::UnboundedReceiver<Update>,
        signals: TracerSignals,
        mut phases: watch::Receiver<Phase>,
        mut labels: mpsc::UnboundedReceiver<Input>,
        run_dir: &Path,
        metrics: Arc<RunMetrics>,
    ) -> Result<LiveDetectors, String> {
        let alarms_file = run_dir.join(super::ALARMS_FILE);
        let mut file = File::create(&alarms_file)
            .map(BufWriter::new)
            .map_err(|e| format!("creating {}: {e}", alarms_file.display()))?;
        let setup = serde_json::to_vec_pretty(&builtin.setup()).expect("a setup serializes");
        let setup_file = run_dir.join(ENGINE_SETUP_FILE);
        std::fs::write(&setup_file, setup)
            .map_err(|e| format!("writing {}: {e}", setup_file.display()))?;
        builtin
            .store()
            .save(&run_dir.join(ENGINE_STORE_FILE))
            .map_err(|e| e.to_string())?;
        let mut recorder = Recorder::create(&run_dir.join(ENGINE_INPUT_FILE))?;
        let path = alarms_file;
        let task = tokio::spawn(async move {
            let mut detected = Detected::default();
            let mut fired = |alarms: Vec<rm::Alarm>| -> Result<(), String> {
                for alarm in alarms {
                    metrics.alarm(&alarm);
                    serde_json::to_writer(&mut file, &alarm).map_err(|e| e.to_string())?;
                    file.write_all(b"\n")
                        .and_then(|()| file.flush())
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                    detected.alarms.push(alarm);
                }
                Ok(())
            };
            let now = || jiff::Timestamp::now().as_microsecond();
            let mut feed = |input: Input| -> Result<(), String> {
                let bare = builtin.to_record(&input);
                recorder.record(bare.as_ref().unwrap_or(&input));
                let alarms = builtin.feed(&input);
                fired(alarms)
            };
            feed(Input::Phase {
                at_us: now(),
                phase: *phases.borrow_and_update(),
            })?;
            let mut phases_open = true;
            let mut labels_open = true;
            let TracerSignals {
                broker_link,
                rest_resumed,
            } = signals;
            let mut link_open = broker_link.is_some();
            // A receiver that never changes stands in when there is no link to follow.
            let (_no_link, unlinked) = watch::channel(None);
            let mut broker_link = broker_link.unwrap_or(unlinked.clone());
            let mut resumed_open = rest_resumed.is_some();
            let mut rest_resumed = rest_resumed.unwrap_or(unlinked);
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let input = tokio::select! {
                    // A phase change applies before the updates that arrive after it, and a
                    // command is known before its first event (it is labelled before its
                    // request is sent).
                    biased;
                    changed = phases.changed(), if phases_open => match changed {
                        Ok(()) => Input::Phase { at_us: now(), phase: *phases.borrow_and_update() },
                        // The run is over; the last transactions still close.
                        Err(_) => {
                            phases_open = false;
                            continue;
                        }
                    },
                    label = labels.recv(), if labels_open => match label {
                        // Stamped when fed, as everything else: the stream's clock never goes
                        // back.
                        Some(label) => label.at(now()),
                        None => {
                            labels_open = false;
                            continue;
                        }
                    },
                    changed = broker_link.changed(), if link_open => match changed {
                        Ok(()) => Input::BrokerLink {
                            at_us: now(),
                            lost_since: *broker_link.borrow_and_update(),
                        },
                        Err(_) => {
                            link_open = false;
                            continue;
                        }
                    },
                    changed = rest_resumed.changed(), if resumed_open => match changed {
                        Ok(()) => match *rest_resumed.borrow_and_update() {
                            Some(resumed_us) => Input::RestResumed { at_us: now(), resumed_us },
                            None => continue,
                        },
                        Err(_) => {
                            resumed_open = false;
                            continue;
                        }
                    },
                    update = updates.recv() => match update {
                        Some(Update::Event { transaction, event }) => {
                            Input::Event { at_us: now(), transaction, event }
                        }
                        Some(Update::Started { transaction, request }) => {
                            Input::Started { at_us: now(), transaction, request }
                        }
                        Some(Update::Closed(transaction)) => Input::Closed {
                            at_us: now(),
                            transaction: Box::new(transaction),
                        },
                        None => break,
                    },
                    _ = ticker.tick() => Input::Tick { at_us: now() },
                };
                feed(input)?;
            }
            recorder.finish();
            detected.divergences = builtin.into_divergences();
            Ok(detected)
        });
        Ok(LiveDetectors { task })
    }

    /// Waits for the detectors to see the end of the trace (stop the tracer first).
    pub async fn finish(self) -> Result<Detected, String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}

/// Runs the campaign's external detectors (commands and alarm files) over the finished trace.
pub fn run_external(campaign: &Campaign, transactions: &[Transaction]) -> Vec<rm::Alarm> {
    let mut alarms = Vec::new();
    for detector in &campaign.detectors {
        let found = match &detector.source {
            DetectorSource::Builtin { .. } => continue,
            DetectorSource::Command { argv } => external_command(argv, transactions),
            DetectorSource::AlarmsFile { path } => read_alarms_file(path),
        };
        match found {
            Ok(found) => alarms.extend(found.into_iter().map(|a| named(a, detector.name.as_str()))),
            Err(error) => eprintln!("butterfly: detector {}: {error}", detector.name),
        }
    }
    alarms
}

fn parse_alarms(text: &str) -> Vec<rm::Alarm> {
    text.lines().filter_map(parse_alarm_line).collect()
}

/// One alarm of a JSON Lines alarm stream; a blank line is none, and a line that does not parse
/// is skipped with a warning that names the parser's complaint, not the line.
fn parse_alarm_line(line: &str) -> Option<rm::Alarm> {
    if line.trim().is_empty() {
        return None;
    }
    match serde_json::from_str(line) {
        Ok(alarm) => Some(alarm),
        Err(error) => {
            eprintln!("butterfly: skipping an alarm line that does not parse: {error}");
            None
        }
    }
}

/// Reads an alarm file line by line through the bounded reader.
pub fn read_alarms_file(path: &Path) -> Result<Vec<rm::Alarm>, String> {
    let mut alarms = Vec::new();
    for line in userinput::file::lines(path, FileKind::ALARMS).map_err(|e| e.to_string())? {
        let (_, line) = line.map_err(|e| e.to_string())?;
        alarms.extend(parse_alarm_line(&line));
    }
    Ok(alarms)
}

/// Runs an external detector: the run's events on stdin (JSON Lines), alarms on stdout.
fn external_command(
    argv: &[String],
    transactions: &[Transaction],
) -> Result<Vec<rm::Alarm>, String> {
    let mut events: Vec<&Event> = transactions.iter().flat_map(|t| &t.events).collect();
    events.sort_by_key(|e| (e.ts_us, e.seq));
    let mut input = Vec::new();
    for event in events {
        serde_json::to_writer(&mut input, event).map_err(|e| e.to_string())?;
        input.push(b'\n');
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    // A detector's answer is held to the alarm files' limit, as a file of alarms would be: a
    // runaway command cannot grow the runner's memory.
    let limit = FileKind::ALARMS.limit;
    let mut alarms = Vec::new();
    let read = stdout.take(limit + 1).read_to_end(&mut alarms);
    if read.is_err() || alarms.len() as u64 > limit {
        let _ = child.kill();
        let _ = child.wait();
        let _ = writer.join();
        return Err(match read {
            Err(error) => format!("reading what {} wrote: {error}", argv[0]),
            Ok(_) => format!(
                "{} wrote more than {} of alarms",
                argv[0],
                userinput::file::size_in_words(limit)
            ),
        });
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !status.success() {
        return Err(format!("{} exited with {status}", argv[0]));
    }
    Ok(parse_alarms(&String::from_utf8_lossy(&alarms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels as the workload gives them: the command from the start, the verdict at the end.
    struct Issued(mpsc::UnboundedSender<Input>);

    impl Issued {
        fn issue(&self, transaction: &Transaction) {
            let command = transaction.command.clone().expect("labelled fixture");
            self.0
                .send(Input::Issued {
                    at_us: 0,
                    request_id: transaction.id.clone(),
                    command,
                })
                .unwrap();
        }

        fn finish(&self, id: &str, ok: bool) {
            self.0
                .send(Input::Finished {
                    at_us: 0,
                    request_id: id.to_owned(),
                    succeeded: ok,
                })
                .unwrap();
        }
    }

    /// Transactions recorded from a real OpenStack (see `fingerprint/tests/fixtures`).
    fn fixture(name: &str) -> Vec<Transaction> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fingerprint/tests/fixtures")
            .join(name)
            .join("transactions.json");
        tracer::import::read_transactions(&path).expect("fixture reads")
    }

    fn user(transactions: Vec<Transaction>) -> Vec<Transaction> {
        transactions
            .into_iter()
            .filter(|t| t.command.is_some() && !t.background)
            .collect()
    }

    /// The create recorded while nova-compute was down: it stalls after its cast to
    /// nova-compute.
    fn stalled_create() -> Transaction {
        user(fixture("compute-down"))
            .into_iter()
            .find(|t| t.command.as_deref() == Some("server create"))
            .unwrap()
    }

    fn window(repetition: usize, window: Option<rm::WindowKind>) -> Phase {
        Phase { repetition, window }
    }

    /// A store holding one known fault: the create recorded while nova-compute was stopped.
    fn compute_stop_store() -> Store {
        let mut store = Store::default();
        let label = fingerprint::FaultLabel {
            fault_kind: "service-stop".to_owned(),
            service: "nova-compute".to_owned(),
            host: Some("osbed".to_owned()),
        };
        store.learn_negative(&stalled_create(), &label);
        store
    }

    fn both() -> Engine {
        Engine::new(Some("fp".into()), Some("late".into()))
            .expect("detectors")
            .with_workload_agent(USER_AGENT)
    }

    /// A campaign (written to `dir/campaign.yaml`) with the given `detectors:` entries.
    fn campaign_with(dir: &Path, detectors: &str) -> Campaign {
        let file = dir.join("campaign.yaml");
        std::fs::write(
            &file,
            format!(
                "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\nexperiments:\n  - name: e\n    fault: {{kind: service-stop}}\n    target: {{service: s}}\n    duration: 1s\ndetectors:\n{detectors}"
            ),
        )
        .unwrap();
        scenarios::load(&file).expect("the campaign is valid")
    }

    #[test]
    fn a_missing_or_invalid_store_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n    fingerprints: absent.json\n",
        );
        let error = engine_of(&campaign).unwrap_err();
        let path = dir.path().join("absent.json");
        assert!(
            error.starts_with(&format!(
                "detector \"fp\": cannot use its fingerprint store: cannot read {}: ",
                path.display()
            )),
            "{error}"
        );
        std::fs::write(dir.path().join("broken.json"), "{\"format\": ").unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: late\n    builtin: timeout\n    fingerprints: broken.json\n",
        );
        let error = engine_of(&campaign).unwrap_err();
        assert!(
            error.contains(&format!("{}:1:", dir.path().join("broken.json").display())),
            "{error}"
        );
    }

    #[test]
    fn an_external_command_s_alarms_are_read_from_its_output() {
        let alarm = r#"{"ts_us":1,"detector":"ext","suspects":[{"service":"nova-conductor","confidence":1.0}],"score":1.0,"transaction":"req-1"}"#;
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            format!("cat >/dev/null; echo '{alarm}'"),
        ];
        let alarms = external_command(&argv, &[]).unwrap();
        assert_eq!(alarms.len(), 1, "{alarms:?}");
    }

    #[test]
    fn an_external_command_that_writes_without_end_is_cut_off_at_the_alarm_limit() {
        let argv = ["sh".to_owned(), "-c".to_owned(), "exec yes '{}'".to_owned()];
        let error = external_command(&argv, &[]).unwrap_err();
        assert!(error.contains("wrote more than 64 MiB"), "{error}");
    }

    #[test]
    fn the_built_in_detectors_share_one_store() {
        let dir = tempfile::tempdir().unwrap();
        compute_stop_store()
            .save(&dir.path().join("a.json"))
            .unwrap();
        compute_stop_store()
            .save(&dir.path().join("b.json"))
            .unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n    fingerprints: a.json\n  - name: late\n    builtin: timeout\n    fingerprints: b.json\n",
        );
        let error = engine_of(&campaign).unwrap_err();
        assert!(
            error.contains("name different fingerprint stores"),
            "{error}"
        );
        // The same store named twice, or by the timeout detector alone, seeds both.
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n  - name: late\n    builtin: timeout\n    fingerprints: b.json\n",
        );
        let detectors = engine_of(&campaign).unwrap().expect("detectors");
        assert_eq!(detectors.store().negatives.len(), 1);
        let campaign = campaign_with(dir.path(), "  - name: external\n    alarms: x.jsonl\n");
        assert!(engine_of(&campaign).unwrap().is_none());
    }

    fn event_updates(transactions: &[Transaction]) -> Vec<Update> {
        let mut events: Vec<(&str, &Event)> = transactions
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
            .collect();
        events.sort_by_key(|(_, e)| (e.ts_us, e.seq));
        events
            .into_iter()
            .map(|(id, event)| Update::Event {
                transaction: id.to_owned(),
                event: Box::new(event.clone()),
            })
            .collect()
    }

    /// Lets the detector task (on this single-threaded runtime) take everything sent so far.
    async fn let_it_run() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_live_task_writes_and_counts_alarms_as_they_fire() {
        let dir = tempfile::tempdir().unwrap();
        let (label_sink, label_inputs) = mpsc::unbounded_channel();
        let labels = Issued(label_sink);
        let normal = user(fixture("create-delete"));
        let create = stalled_create();
        let (phase, phases) = watch::channel(window(1, Some(rm::WindowKind::Baseline)));
        let (sink, updates) = mpsc::unbounded_channel();
        let metrics = Arc::new(RunMetrics::new());
        let alarms_file = dir.path().join("alarms.jsonl");
        let live = LiveDetectors::spawn(
            both(),
            updates,
            TracerSignals::default(),
            phases,
            label_inputs,
            dir.path(),
            metrics.clone(),
        )
        .unwrap();
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        for update in event_updates(&normal) {
            sink.send(update).unwrap();
        }
        for transaction in &normal {
            sink.send(Update::Closed(transaction.clone())).unwrap();
        }
        let_it_run().await;
        phase.send(window(1, Some(rm::WindowKind::Fault))).unwrap();
        labels.issue(&create);
        for update in event_updates(std::slice::from_ref(&create)) {
            sink.send(update).unwrap();
        }
        let_it_run().await;
        // The fingerprint alarm fires when the transaction closes; the file has it already.
        sink.send(Update::Closed(create.clone())).unwrap();
        let_it_run().await;
        let written = std::fs::read_to_string(&alarms_file).unwrap();
        assert!(
            written
                .lines()
                .map(|line| serde_json::from_str::<rm::Alarm>(line).unwrap())
                .any(|alarm| alarm.detector == "fp"
                    && alarm.transaction.as_deref() == Some(create.id.as_str())),
            "{written}"
        );
        drop(sink);
        let detected = live.finish().await.unwrap();
        let written = std::fs::read_to_string(&alarms_file).unwrap();
        assert_eq!(written.lines().count(), detected.alarms.len());
        let textfile = dir.path().join("metrics.prom");
        metrics.write_textfile(&textfile).unwrap();
        let text = std::fs::read_to_string(textfile).unwrap();
        let fingerprint_alarms = detected
            .alarms
            .iter()
            .filter(|a| a.detector == "fp")
            .count();
        assert!(
            text.contains(&format!(
                "butterfly_alarms_total{{detector=\"fp\"}} {fingerprint_alarms}"
            )),
            "{text}"
        );
        assert_eq!(detected.divergences.len(), 1);
        // Everything it fed the engine is recorded: the replay raises the same alarms.
        let replayed =
            super::super::replay::replay(dir.path(), super::super::replay::Speed::Max, |_| {})
                .unwrap();
        assert!(replayed.inputs > normal.len(), "{}", replayed.inputs);
        assert_eq!(replayed.live.len(), detected.alarms.len());
        assert!(replayed.comparison.same(), "{:#?}", replayed.comparison);
        assert_eq!(replayed.comparison.max_shift_us, 0);
    }

    #[test]
    fn the_engine_s_roles_are_the_inventory_s_functions_not_names_or_ports() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("campaign.yaml");
        // A kolla-like inventory: PostgreSQL on a port of its own, the broker named otherwise.
        std::fs::write(
            &file,
            "version: 1\ntestbed:\n  hosts:\n    - name: ctl\n      address: 127.0.0.1\n      roles: [control]\n  services:\n    - name: nova_api\n      unit: nova-api.service\n      roles: [control]\n      function: api\n    - name: pg\n      unit: pg.service\n      roles: [control]\n      ports: [6432]\n      function: database\n    - name: mq\n      unit: mq.service\n      hosts: [ctl]\n      function: broker\n    - name: mariadb\n      unit: mariadb.service\n      roles: [control]\n      ports: [3306]\nexperiments:\n  - name: e\n    fault: {kind: service-stop}\n    target: {service: pg}\n    duration: 1s\n",
        )
        .unwrap();
        let campaign = scenarios::load(&file).expect("the campaign is valid");
        let roles = roles_of(&campaign);
        assert_eq!(
            roles.first(Function::Database),
            Some(("pg".to_owned(), Some("ctl".to_owned())))
        );
        assert_eq!(
            roles.first(Function::Broker),
            Some(("mq".to_owned(), Some("ctl".to_owned())))
        );
        assert!(roles.may_serve_users("nova_api"));
        assert!(!roles.may_serve_users("mariadb"));
    }
}
