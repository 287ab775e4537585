//! `butterfly watch` on the real local RabbitMQ (a vhost of its own, firehose on) and a REST
//! record stream served by the test: oslo.messaging-shaped messages and REST exchanges of users'
//! requests, normal ones and a faulty one; the alarms in the JSON Lines file, on a webhook
//! received by a tiny HTTP server in the test, and on `/metrics`.
//!
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and `rabbitmqctl` on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fingerprint::Store;
use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::sync::mpsc;
use tracer::event::Transaction;
use tracer::oslo::{AmqpRecord, Direction, envelope};
use tracer::pipeline::Pipeline;
use tracer::records::RecordServer;
use tracer::rest::{ProxyRecord, RestRecord};
use tracer::stitch::StitchConfig;

// The tracer's own helpers for the local RabbitMQ: a vhost of the test's own, deleted on drop.
#[allow(dead_code)]
#[path = "../tracer/tests/common/rabbitmq.rs"]
mod rabbitmq;

/// A vhost of the test's own with the firehose on (deleted, firehose and all, on drop).
fn traced_vhost() -> rabbitmq::TestVhost {
    let vhost = rabbitmq::TestVhost::new("watch");
    rabbitmq::rabbitmqctl(&["trace_on", "-p", &vhost.0]);
    vhost
}

/// One message of a user's `widget create`, or its REST exchange.
enum Step {
    /// Published to `exchange` with `routing_key`.
    Amqp {
        exchange: &'static str,
        routing_key: String,
        inner: serde_json::Value,
    },
    /// The entry exchange, recorded once answered (last).
    Rest(RestRecord),
}

/// A `widget create`: `POST /v2.1/servers` to nova-api, which casts to the conductor, which
/// calls nova-compute; nova-compute replies. In a faulty one it replies with a failure.
fn widget_create(id: &str, faulty: bool, start_us: i64) -> Vec<Step> {
    let context = |inner: serde_json::Value| {
        let mut inner = inner;
        inner["_context_request_id"] = id.into();
        inner["_context_user_id"] = "u1".into();
        inner["_context_project_id"] = "p1".into();
        inner
    };
    let msg_id = format!("m-{id}");
    let reply = if faulty {
        serde_json::json!({"failure": "{\"class\": \"WidgetJammed\", \"message\": \"jammed\"}", "ending": true, "_msg_id": msg_id})
    } else {
        serde_json::json!({"result": null, "ending": true, "_msg_id": msg_id})
    };
    vec![
        Step::Amqp {
            exchange: "nova",
            routing_key: "conductor".into(),
            inner: context(serde_json::json!({"method": "build_widgets", "args": {}})),
        },
        Step::Amqp {
            exchange: "nova",
            routing_key: "compute.hosta".into(),
            inner: context(serde_json::json!({
                "method": "attach_widget", "args": {}, "_msg_id": msg_id,
                "_reply_q": format!("reply_{id}"), "_timeout": 60
            })),
        },
        Step::Amqp {
            exchange: "",
            routing_key: format!("reply_{id}"),
            inner: reply,
        },
        Step::Rest(RestRecord {
            ts_us: start_us,
            service: "nova-api".into(),
            upstream: "http://127.0.0.1:8774".into(),
            upstream_host: Some("controller".into()),
            method: "POST".into(),
            path: "/v2.1/servers".into(),
            // The API accepts; the failure is nova-compute's, later.
            status: 202,
            duration_us: 150_000,
            global_request_id: None,
            request_id: Some(id.into()),
            user_agent: Some("python-novaclient".into()),
        }),
    ]
}

/// Positives learned from three normal `widget create`s stitched like the live ones.
fn store() -> Store {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    for (n, gap_us) in [30_000, 60_000, 120_000].into_iter().enumerate() {
        let id = format!("req-learn-{n}");
        let start = 1_700_000_000_000_000 + n as i64 * 100_000_000;
        let mut ts = start + 10_000;
        for step in widget_create(&id, false, start) {
            match step {
                Step::Amqp {
                    exchange,
                    routing_key,
                    inner,
                } => {
                    ts += gap_us;
                    pipeline
                        .push_amqp(&AmqpRecord {
                            ts_us: ts,
                            direction: Direction::Publish,
                            exchange: exchange.into(),
                            routing_key,
                            queue: None,
                            expiration: None,
                            body: envelope(&inner),
                        })
                        .unwrap();
                }
                Step::Rest(record) => pipeline.push_rest(&record).unwrap(),
            }
        }
    }
    let transactions: Vec<Transaction> = pipeline.finish().unwrap().transactions;
    let mut store = Store::default();
    for mut transaction in transactions {
        transaction.command = Some("widget create".into());
        store.learn_positive(&transaction);
    }
    assert_eq!(store.commands["widget create"].runs, 3);
    store
}

/// Webhook bodies received, each an Alertmanager alert list.
type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A tiny HTTP server taking POSTs on loopback: what an Alertmanager would receive.
async fn webhook_server() -> (SocketAddr, Received) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let kept = received.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let kept = kept.clone();
                        async move {
                            assert_eq!(request.method(), hyper::Method::POST);
                            assert_eq!(request.uri().path(), "/api/v2/alerts");
                            let body = request.into_body().collect().await?.to_bytes();
                            kept.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).expect("JSON"));
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn inventory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/testbed-inventory.yaml")
}

/// Stops the watch with SIGTERM when dropped (a failed assertion included).
struct Watching(Child);

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

async fn scrape(port: u16) -> Option<String> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?;
    response.text().await.ok()
}

/// Polls `check` every 200 ms until it holds or `within` passes.
async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check()
}

fn alarms_in(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("an alarm per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_alarms_on_a_faulty_request_and_not_on_normal_ones_to_file_webhook_and_metrics() {
    let vhost = traced_vhost();
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp.json");
    store().save(&fp).unwrap();
    let alarms = dir.path().join("alarms.jsonl");

    let server = RecordServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let stream_addr = server.local_addr().unwrap();
    let stream_stats = server.stats();
    let (records, stream) = mpsc::unbounded_channel();
    let (_stop_stream, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(stream, async {
        let _ = stopped.await;
    }));
    let (hook, received) = webhook_server().await;
    let metrics_port = free_port();

    let child = Command::new(env!("CARGO_BIN_EXE_butterfly"))
        .arg("watch")
        .arg("--inventory")
        .arg(inventory())
        .arg("--fingerprints")
        .arg(&fp)
        .args(["--amqp", &vhost.url()])
        .args(["--rest-records", &stream_addr.to_string()])
        .args(["--webhook", &format!("http://{hook}/api/v2/alerts")])
        .args(["--listen", &format!("127.0.0.1:{metrics_port}")])
        .arg("--alarms")
        .arg(&alarms)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watching = Watching(child);
    // The record stream is subscribed once the AMQP capture consumes: then both see everything.
    let ready = eventually(Duration::from_secs(20), || {
        stream_stats.summary().ends_with(" 1 subscribers so far")
    })
    .await;
    let summary = stream_stats.summary();
    assert!(ready, "the watch did not subscribe: {summary}");
    assert!(
        scrape(metrics_port).await.is_some(),
        "/metrics answers once the watch is up"
    );

    let connection = Connection::connect(&vhost.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            "nova".into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let run = |id: String, faulty: bool| {
        let channel = channel.clone();
        let records = records.clone();
        async move {
            let start = jiff::Timestamp::now().as_microsecond();
            tokio::time::sleep(Duration::from_millis(10)).await;
            for step in widget_create(&id, faulty, start) {
                match step {
                    Step::Amqp {
                        exchange,
                        routing_key,
                        inner,
                    } => {
                        channel
                            .basic_publish(
                                exchange.into(),
                                routing_key.as_str().into(),
                                BasicPublishOptions::default(),
                                &envelope(&inner),
                                BasicProperties::default(),
                            )
                            .await
                            .unwrap()
                            .await
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                    Step::Rest(record) => records.send(ProxyRecord::Answered(record)).unwrap(),
                }
            }
        }
    };
    let normal: Vec<String> = (0..3)
        .map(|n| format!("req-normal-{n}-{}", std::process::id()))
        .collect();
    for id in &normal {
        run(id.clone(), false).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let faulty = format!("req-faulty-{}", std::process::id());
    run(faulty.clone(), true).await;

    // Diagnosed once settled (5 s quiet) after the labelling grace (3 s).
    let alarmed = eventually(Duration::from_secs(30), || {
        alarms_in(&alarms)
            .iter()
            .any(|a| a["transaction"] == faulty.as_str())
    })
    .await;
    let mut stderr = String::new();
    if !alarmed {
        drop(watching);
        panic!(
            "no alarm about the faulty request: {:?}",
            alarms_in(&alarms)
        );
    }
    // The normal requests settled before the faulty one: none raised an alarm.
    let written = alarms_in(&alarms);
    for id in &normal {
        assert!(
            !written.iter().any(|a| a["transaction"] == id.as_str()),
            "a false alarm about {id}: {written:?}"
        );
    }
    let about = written
        .iter()
        .find(|a| a["transaction"] == faulty.as_str() && a["detector"] == "fingerprint")
        .expect("a fingerprint alarm");
    assert_eq!(about["suspects"][0]["service"], "nova-compute", "{about}");

    // The webhook got it as an Alertmanager v2 alert.
    let delivered = eventually(Duration::from_secs(10), || {
        received.lock().unwrap().iter().any(|batch| {
            batch
                .as_array()
                .unwrap()
                .iter()
                .any(|alert| alert["labels"]["transaction"] == faulty.as_str())
        })
    })
    .await;
    assert!(delivered, "{:?}", received.lock().unwrap());
    let batches = received.lock().unwrap().clone();
    let alert = batches
        .iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .find(|alert| {
            alert["labels"]["transaction"] == faulty.as_str()
                && alert["labels"]["detector"] == "fingerprint"
        })
        .expect("the fingerprint alert");
    assert_eq!(alert["labels"]["alertname"], "ButterflyAnomaly");
    assert_eq!(alert["labels"]["command"], "widget create");
    assert_eq!(alert["labels"]["suspect"], "nova-compute");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("nova-compute")
    );
    let starts: jiff::Timestamp = alert["startsAt"].as_str().unwrap().parse().unwrap();
    let ends: jiff::Timestamp = alert["endsAt"].as_str().unwrap().parse().unwrap();
    assert!(ends > starts);
    assert_eq!(
        alert["generatorURL"],
        format!("http://127.0.0.1:{metrics_port}/metrics")
    );

    // /metrics counts what it saw.
    let text = scrape(metrics_port).await.expect("/metrics");
    assert!(
        text.contains(
            "butterfly_watch_alarms_total{detector=\"fingerprint\",suspect=\"nova-compute\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("butterfly_watch_transactions_total{kind=\"judged\"}")
            || text.contains("butterfly_watch_open_transactions"),
        "{text}"
    );
    let events: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("butterfly_watch_events_total "))
        .expect("the events counter")
        .parse()
        .unwrap();
    // 4 requests × (3 messages + 1 exchange).
    assert_eq!(events, 16, "{text}");
    assert!(text.contains("butterfly_watch_store_variants 1"), "{text}");

    // SIGTERM is the watch's normal end: exit 0, with its summary.
    let pid = watching.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = watching.0.wait().unwrap();
    use std::io::Read;
    watching
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("watch stopped by a signal: 16 events"),
        "{stderr}"
    );
    connection.close(200, "done".into()).await.unwrap();
}

fn butterfly() -> Command {
    Command::new(env!("CARGO_BIN_EXE_butterfly"))
}

/// The transactions of a recorded run as a live tracer delivers their events (a REST exchange
/// once answered), written as `events.jsonl`.
fn recorded_events(fixture: &str, out: &Path) -> usize {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fingerprint/tests/fixtures")
        .join(fixture)
        .join("transactions.json");
    let transactions = tracer::import::read_transactions(&path).unwrap();
    let mut events: Vec<tracer::event::Event> =
        transactions.into_iter().flat_map(|t| t.events).collect();
    let arrival = |e: &tracer::event::Event| match e.kind {
        tracer::event::EventKind::RestRequest => e.ts_us + e.duration_us.unwrap_or(0) as i64,
        _ => e.ts_us,
    };
    events.sort_by_key(|e| (arrival(e), e.seq));
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    std::fs::write(out, lines.join("\n") + "\n").unwrap();
    events.len()
}

#[test]
fn a_replayed_trace_of_normal_traffic_is_read_whole_raises_no_alarm_and_ends_with_0() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp.json");
    let learned = butterfly()
        .args(["fingerprint", "learn", "--traces"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fingerprint/tests/fixtures/create-delete"))
        .arg("--out")
        .arg(&fp)
        .output()
        .unwrap();
    assert!(learned.status.success());
    let events = dir.path().join("events.jsonl");
    let count = recorded_events("create-delete", &events);
    let alarms = dir.path().join("alarms.jsonl");
    let output = butterfly()
        .arg("watch")
        .arg("--inventory")
        .arg(inventory())
        .arg("--fingerprints")
        .arg(&fp)
        .arg("--from-trace")
        .arg(&events)
        .arg("--alarms")
        .arg(&alarms)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "({count} read from the trace, {count} stitched, 0 in no transaction)"
        )),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&alarms).unwrap(), "");
}

#[test]
fn watch_refuses_what_it_cannot_watch_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp.json");
    store().save(&fp).unwrap();
    let run = |args: &[&str]| {
        let output = butterfly()
            .arg("watch")
            .arg("--inventory")
            .arg(inventory())
            .arg("--fingerprints")
            .arg(&fp)
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nothing to watch; hint:"), "{stderr}");
    let (code, stderr) = run(&["--from-trace", "x.jsonl", "--speed", "fast"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--speed \"fast\""), "{stderr}");
    let (code, stderr) = run(&["--amqp", "http://nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    // A store whose commands start with no REST request labels nothing.
    Store::default().save(&fp).unwrap();
    let (code, stderr) = run(&["--amqp", "amqp://guest:guest@127.0.0.1:5672/%2f"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("no command of this store starts with a REST request"),
        "{stderr}"
    );
}

#[test]
fn watch_routes_prints_which_request_starts_which_command() {
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("fp.json");
    store().save(&fp).unwrap();
    let output = butterfly()
        .arg("watch")
        .arg("--inventory")
        .arg(inventory())
        .arg("--fingerprints")
        .arg(&fp)
        .arg("--routes")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "nova-api:POST /v2.1/servers\twidget create\n"
    );
}
