//! The broker and database fault kinds on the controller of a full testbed (RabbitMQ, MariaDB and
//! the OpenStack services that use them): inject → observe the effect independently (system ssh,
//! `rabbitmq-diagnostics` / a second MariaDB session, not the catalog's own checks) → revert →
//! observe the controller back (application running, no alarm, clients reconnected, lock released,
//! nothing of ours left).
//!
//! Needs `butterfly testbed up` with OpenStack (not `--hosts-only`); run with
//! `cargo test -p injector --test testbed_broker_db -- --ignored --test-threads=1`.

mod common;

use std::time::Duration;

use common::*;
use scenarios::fault::Fault;
use scenarios::units::SqlIdent;

const SECONDS: Duration = Duration::from_secs(60);
/// How long the OpenStack services may take to reconnect to the broker after a fault.
const RECONNECT: Duration = Duration::from_secs(120);
/// The MariaDB client on the testbed hosts (root over the unix socket).
const MYSQL: &str = "m=$(command -v mariadb || command -v mysql)";

/// The controller of a testbed that runs OpenStack, failing loudly otherwise.
fn controller() -> injector::HostSpec {
    let path = testbed_dir().join("testbed.json");
    let state = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the local testbed is not up ({}: {e}); run `butterfly testbed up` first",
            path.display()
        )
    });
    let state: serde_json::Value = serde_json::from_str(&state).expect("testbed.json is JSON");
    assert_eq!(
        state["mode"].as_str(),
        Some("open-stack"),
        "the testbed at {} runs without OpenStack; these tests need `butterfly testbed up` (no --hosts-only)",
        path.display()
    );
    let controller = host("controller");
    must(
        &controller.name,
        "rabbitmq-diagnostics -q check_running >/dev/null && m=$(command -v mariadb || command -v mysql) && $m -N -B -e 'SELECT 1' >/dev/null",
    );
    controller
}

/// Client connections of the broker.
fn broker_connections(host: &str) -> usize {
    must(
        host,
        "rabbitmqctl -q list_connections connected_at | grep -c '^[0-9]'; true",
    )
    .parse()
    .unwrap_or(0)
}

/// Client connections of the broker before a fault, which must include the OpenStack services'.
fn openstack_broker_connections(host: &str) -> usize {
    let connections = broker_connections(host);
    assert!(
        connections > 0,
        "no OpenStack service is connected to RabbitMQ"
    );
    connections
}

/// After a revert, the broker's clients come back (to at least as many as `before`).
fn assert_broker_clients_reconnect(host: &str, before: usize) {
    assert!(
        eventually(RECONNECT, || broker_connections(host) >= before),
        "only {} of {before} broker connections came back within {RECONNECT:?}",
        broker_connections(host)
    );
}

/// Runs SQL on the controller in a session of its own; returns `(success, stdout + stderr)`.
fn sql(host: &str, statements: &str) -> (bool, String) {
    observe(
        host,
        &format!(
            "{MYSQL} && \"$m\" -N -B -e {} 2>&1",
            injector::shell::quote(statements)
        ),
    )
}

/// A test-owned database with one InnoDB table `t`, dropped again on drop.
struct TestDatabase {
    host: String,
    name: String,
}

impl TestDatabase {
    fn create(host: &str) -> TestDatabase {
        let name = format!("bflyt{}", tag());
        let (ok, out) = sql(
            host,
            &format!(
                "CREATE DATABASE `{name}`; CREATE TABLE `{name}`.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO `{name}`.t VALUES (1, 1);"
            ),
        );
        assert!(ok, "creating {name}: {out}");
        TestDatabase {
            host: host.to_owned(),
            name,
        }
    }

    /// A write with a 2 s lock wait: `(success, message)`.
    fn try_write(&self, id: u32) -> (bool, String) {
        sql(
            &self.host,
            &format!(
                "SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2; INSERT INTO `{}`.t VALUES ({id}, 0);",
                self.name
            ),
        )
    }

    fn rows(&self) -> String {
        let (ok, out) = sql(
            &self.host,
            &format!("SELECT COUNT(*) FROM `{}`.t;", self.name),
        );
        assert!(ok, "read of {}.t failed: {out}", self.name);
        out.trim().to_owned()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = sql(
            &self.host,
            &format!("DROP DATABASE IF EXISTS `{}`;", self.name),
        );
    }
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn rabbitmq_close_connections_drops_every_client_and_the_services_reconnect() {
    let (_serial, host, bench) = setup(controller);
    let before = openstack_broker_connections(&host.name);
    let t0: u64 = must(&host.name, "date +%s%3N").parse().unwrap();
    let active = bench.inject(&plan(
        &Fault::RabbitmqCloseConnections,
        &host,
        None,
        SECONDS,
    ));
    let old = format!(
        "rabbitmqctl -q list_connections connected_at | awk -v t={t0} '$1 ~ /^[0-9]+$/ && $1 < t' | wc -l"
    );
    assert_eq!(
        must(&host.name, &old),
        "0",
        "connections opened before the fault survived it"
    );
    bench.revert(&active);
    assert_broker_clients_reconnect(&host.name, before);
    bench.assert_all_clean(&[&host.name]);
}

/// Restores the broker's memory watermark (a fraction) on drop.
struct WatermarkGuard {
    host: String,
    fraction: String,
}

impl Drop for WatermarkGuard {
    fn drop(&mut self) {
        let _ = observe(
            &self.host,
            &format!(
                "rabbitmqctl -q set_vm_memory_high_watermark {}",
                self.fraction
            ),
        );
    }
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn rabbitmq_memory_alarm_is_raised_and_cleared_with_the_watermark_restored() {
    let (_serial, host, bench) = setup(controller);
    let fraction = must(
        &host.name,
        "rabbitmqctl -q eval 'vm_memory_monitor:get_vm_memory_high_watermark().'",
    );
    assert!(
        fraction.parse::<f64>().is_ok(),
        "the testbed's watermark is not a fraction: {fraction}"
    );
    let _restore = WatermarkGuard {
        host: host.name.clone(),
        fraction,
    };
    let watermark =
        "rabbitmqctl -q status | grep -i -A1 'memory high watermark' | tr -s ' \\n' ' '";
    // Once with the configured fraction, once with an absolute watermark (which the revert must
    // restore as `absolute BYTES`).
    for setting in [None, Some("absolute 2000000000")] {
        if let Some(setting) = setting {
            must(
                &host.name,
                &format!("rabbitmqctl -q set_vm_memory_high_watermark {setting}"),
            );
        }
        let watermark_before = must(&host.name, watermark);
        must(&host.name, "rabbitmq-diagnostics -q check_alarms");
        let active = bench.inject(&plan(&Fault::RabbitmqMemoryAlarm, &host, None, SECONDS));
        let (ok, out) = observe(&host.name, "rabbitmq-diagnostics -q check_alarms 2>&1");
        assert!(
            !ok && out.to_lowercase().contains("memory"),
            "{setting:?}: rabbitmq-diagnostics sees no memory alarm: {out}"
        );
        bench.revert(&active);
        assert!(
            eventually(Duration::from_secs(10), || observe(
                &host.name,
                "rabbitmq-diagnostics -q check_alarms"
            )
            .0),
            "{setting:?}: the memory alarm is still raised after the revert"
        );
        assert_eq!(must(&host.name, watermark), watermark_before, "{setting:?}");
    }
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn rabbitmq_stop_app_refuses_amqp_and_start_app_brings_the_clients_back() {
    let (_serial, host, bench) = setup(controller);
    let before = openstack_broker_connections(&host.name);
    let amqp_open = "socat -u OPEN:/dev/null TCP:127.0.0.1:5672,connect-timeout=3";
    assert!(observe(&host.name, amqp_open).0);
    let active = bench.inject(&plan(&Fault::RabbitmqStopApp, &host, None, SECONDS));
    assert!(
        !observe(&host.name, "rabbitmq-diagnostics -q check_running").0,
        "rabbitmq-diagnostics says the application still runs"
    );
    assert!(
        !observe(&host.name, amqp_open).0,
        "the AMQP port still accepts connections with the application stopped"
    );
    bench.revert(&active);
    must(&host.name, "rabbitmq-diagnostics -q check_running");
    assert!(observe(&host.name, amqp_open).0);
    assert_broker_clients_reconnect(&host.name, before);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn mariadb_lock_tables_blocks_writes_not_reads_and_releases_on_revert() {
    let (_serial, host, bench) = setup(controller);
    let db = TestDatabase::create(&host.name);
    assert!(db.try_write(2).0, "a write before the fault failed");
    let fault = Fault::MariadbLockTables {
        database: SqlIdent::new(&db.name).unwrap(),
        tables: vec![SqlIdent::new("t").unwrap()],
    };
    let active = bench.inject(&plan(&fault, &host, None, SECONDS));
    assert_eq!(db.rows(), "2", "a read under the READ lock");
    let (wrote, message) = db.try_write(3);
    assert!(
        !wrote && message.contains("Lock wait timeout"),
        "a write went through the READ lock: ok={wrote}: {message}"
    );
    bench.revert(&active);
    let (wrote, message) = db.try_write(4);
    assert!(wrote, "the write still fails after the revert: {message}");
    assert_eq!(db.rows(), "3");
    let (_, sessions) = sql(
        &host.name,
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(%';",
    );
    assert_eq!(sessions.trim(), "0", "the locking session is still there");
    drop(db);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn mariadb_kill_connections_ends_every_client_session_and_the_services_reconnect() {
    let (_serial, host, bench) = setup(controller);
    // A client session of ours, recognisable by its query.
    let t = tag();
    let marker = format!("bfly_session_{t}");
    let session = TestUnit::start(
        &host.name,
        &t,
        &format!("{MYSQL} && exec \"$m\" -N -B -e 'SELECT SLEEP(600) AS {marker}'"),
    );
    let find = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%{marker}%' AND ID <> CONNECTION_ID();"
    );
    assert!(
        eventually(Duration::from_secs(10), || !sql(&host.name, &find)
            .1
            .trim()
            .is_empty()),
        "the test session did not show up"
    );
    // The OpenStack services' own sessions (pooled by SQLAlchemy) are killed as well.
    let services = "SELECT ID FROM information_schema.PROCESSLIST WHERE USER NOT IN ('root', 'system user') AND COMMAND <> 'Daemon';";
    let service_sessions = sql(&host.name, services).1;
    assert!(
        !service_sessions.trim().is_empty(),
        "no OpenStack service holds a MariaDB session"
    );
    let active = bench.inject(&plan(
        &Fault::MariadbKillConnections { user: None },
        &host,
        None,
        SECONDS,
    ));
    assert!(
        eventually(Duration::from_secs(5), || sql(&host.name, &find)
            .1
            .trim()
            .is_empty()),
        "the session is still in the process list"
    );
    assert!(
        eventually(Duration::from_secs(5), || !session.is_active()),
        "the client of the killed session still runs"
    );
    let survivors = format!(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ({});",
        service_sessions
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(",")
    );
    let (ok, left) = sql(&host.name, &survivors);
    assert!(
        ok && left.trim().is_empty(),
        "service sessions survived: {left}"
    );
    bench.revert(&active);
    assert!(
        eventually(RECONNECT, || !sql(&host.name, services).1.trim().is_empty()),
        "no OpenStack service reconnected to MariaDB within {RECONNECT:?}"
    );
    drop(session);
    bench.assert_all_clean(&[&host.name]);
}
