//! Every fault kind on the local testbed's hosts: inject → observe the effect independently
//! (system ssh, not the injector's transport) → revert → observe the host back in its prior state.
//!
//! Needs `butterfly testbed up --hosts-only`; run with
//! `cargo test -p injector --test testbed -- --ignored --test-threads=1`.

mod common;

use std::time::Duration;

use common::*;
use scenarios::fault::{Direction, Fault, FillAmount, FreezeMethod, Peer, Signal};
use scenarios::units::{Bytes, InterfaceName, PathName, Percent, ProcessName};

const TESTBED: &str = "needs the local testbed; run by .ci/run";
const SECONDS: Duration = Duration::from_secs(60);

/// A test-owned unit that counts up (`count`) and writes its clock (`now`) ten times a second
/// into its own directory.
fn ticker_unit(host: &str) -> TestUnit {
    let t = tag();
    let dir = format!("/run/bfly-test-{t}");
    TestUnit::start(
        host,
        &t,
        &format!(
            "i=0; while :; do i=$((i+1)); echo $i > {dir}/count; date +%s > {dir}/now; sleep 0.1; done"
        ),
    )
}

fn count(unit: &TestUnit) -> u64 {
    must(&unit.host, &format!("cat {}/count", unit.dir))
        .parse()
        .unwrap_or(0)
}

fn peer(host: &injector::HostSpec) -> Peer {
    Peer {
        name: host.name.clone(),
        address: address(host),
    }
}

/// Minimum ping round-trip time in ms from `from` to `to_address` over 5 echo requests.
fn ping_min_ms(from: &str, to_address: &str) -> f64 {
    let out = must(
        from,
        &format!("ping -q -c 5 -i 0.2 -W 2 {to_address} | tail -1 | cut -d= -f2 | cut -d/ -f1"),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("unexpected ping summary {out:?}"))
}

/// A TCP sink on a host (test-owned unit): accepts connections on `port` forever.
fn tcp_sink(host: &str, port: u16) -> TestUnit {
    let unit = TestUnit::start(
        host,
        &tag(),
        &format!("exec socat -u TCP-LISTEN:{port},fork,reuseaddr OPEN:/dev/null"),
    );
    assert_listening(host, port);
    unit
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn process_kill_of_a_service_main_pid_and_by_exact_name() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let _ = TESTBED;
    // By main PID: the process is gone, revert starts the unit again.
    let unit = TestUnit::start(&host.name, &tag(), "exec sleep infinity");
    let before = unit.main_pid();
    let service = unit.service();
    let by_pid = plan(
        &Fault::ProcessKill {
            signal: Signal::Kill,
            process: None,
        },
        &host,
        Some(&service),
        SECONDS,
    );
    let active = bench.inject(&by_pid);
    assert!(
        !observe(&host.name, &format!("[ -d /proc/{before} ]")).0,
        "pid {before} still exists"
    );
    assert!(
        !unit.is_active(),
        "Restart=no: the unit stays down while the fault is active"
    );
    assert_eq!(
        bench.revert(&active).as_deref(),
        Some("not healed by supervisor: started by the revert"),
        "Restart=no: the revert started it, and says so"
    );
    assert!(unit.is_active());
    assert_ne!(unit.main_pid(), before);
    // By exact process name.
    let t = tag();
    let name = format!("bflyt{t}");
    let named = TestUnit::start(
        &host.name,
        &t,
        &format!(
            "cp /bin/sleep /run/bfly-test-{t}/{name} && exec /run/bfly-test-{t}/{name} infinity"
        ),
    );
    assert!(eventually(Duration::from_secs(5), || observe(
        &host.name,
        &format!("pgrep -x {name}")
    )
    .0));
    let fault = Fault::ProcessKill {
        signal: Signal::Term,
        process: Some(ProcessName::new(&name).unwrap()),
    };
    let by_name = plan(&fault, &host, None, SECONDS);
    let active = bench.inject(&by_name);
    assert!(
        !observe(&host.name, &format!("pgrep -x {name}")).0,
        "{name} still runs"
    );
    bench.revert(&active);
    drop(named);
    drop(unit);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn a_killed_unit_that_systemd_restarts_is_reported_healed_with_its_time() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    // DevStack's units restart on failure; a RestartSec of 2 s makes the heal time measurable.
    let unit = TestUnit::start_restarting(
        &host.name,
        &tag(),
        "exec sleep infinity",
        "Restart=on-failure\nRestartSec=2",
    );
    let before = unit.main_pid();
    let kill = plan(
        &Fault::ProcessKill {
            signal: Signal::Kill,
            process: None,
        },
        &host,
        Some(&unit.service()),
        SECONDS,
    );
    let active = bench.inject(&kill);
    assert!(
        eventually(Duration::from_secs(10), || unit.is_active()
            && unit.main_pid() != before),
        "systemd did not restart the unit"
    );
    let seen = bench
        .revert(&active)
        .expect("the revert says what it found");
    let seconds: f64 = seen
        .strip_prefix("healed by supervisor after ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("not a heal: {seen:?}"))
        .parse()
        .unwrap();
    // systemd waits RestartSec before it starts the unit again: the heal cannot be shorter.
    assert!(
        (2.0..10.0).contains(&seconds),
        "heal time {seconds} s, RestartSec=2"
    );
    assert!(
        !observe(&host.name, "ls /run/bfly-killed-* 2>/dev/null | grep -q .").0,
        "the kill stamp is left behind"
    );
    drop(unit);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn service_stop_restart_and_kill() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let unit = TestUnit::start(&host.name, &tag(), "exec sleep infinity");
    let service = unit.service();

    let active = bench.inject(&plan(&Fault::ServiceStop, &host, Some(&service), SECONDS));
    assert!(!unit.is_active());
    bench.revert(&active);
    assert!(unit.is_active());

    let before = unit.main_pid();
    let active = bench.inject(&plan(
        &Fault::ServiceRestart,
        &host,
        Some(&service),
        SECONDS,
    ));
    assert!(unit.is_active());
    assert_ne!(unit.main_pid(), before);
    bench.revert(&active);

    let before = unit.main_pid();
    let active = bench.inject(&plan(
        &Fault::ServiceKill {
            signal: Signal::Kill,
        },
        &host,
        Some(&service),
        SECONDS,
    ));
    assert!(!observe(&host.name, &format!("[ -d /proc/{before} ]")).0);
    assert!(!unit.is_active());
    bench.revert(&active);
    assert!(unit.is_active());
    drop(unit);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn process_freeze_with_the_cgroup_freezer_and_sigstop() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let unit = ticker_unit(&host.name);
    let service = unit.service();
    for method in [FreezeMethod::Cgroup, FreezeMethod::Sigstop] {
        assert!(eventually(Duration::from_secs(5), || count(&unit) > 0));
        let active = bench.inject(&plan(
            &Fault::ProcessFreeze { method },
            &host,
            Some(&service),
            SECONDS,
        ));
        let frozen_at = count(&unit);
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            count(&unit),
            frozen_at,
            "{method:?}: the ticker kept running while frozen"
        );
        bench.revert(&active);
        assert!(
            eventually(Duration::from_secs(5), || count(&unit) > frozen_at),
            "{method:?}: the ticker did not resume"
        );
    }
    drop(unit);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn network_delay_with_the_nfqueue_delayer_towards_one_peer() {
    let (_serial, (source, target, other), bench) =
        setup(|| (host("compute1"), host("compute2"), host("controller")));
    let baseline = ping_min_ms(&source.name, &address(&target));
    let fault = Fault::NetworkDelay {
        delay: Duration::from_millis(100),
        jitter: Duration::ZERO,
        interface: InterfaceName::new("eth0").unwrap(),
        direction: Direction::Egress,
        peers: vec![peer(&target)],
        ports: vec![],
    };
    let active = bench.inject(&plan(&fault, &source, None, SECONDS));
    let delayed = ping_min_ms(&source.name, &address(&target));
    let unaffected = ping_min_ms(&source.name, &address(&other));
    bench.revert(&active);
    let after = ping_min_ms(&source.name, &address(&target));
    eprintln!(
        "min ping rtt ms: baseline {baseline:.2}, delayed {delayed:.2}, other peer {unaffected:.2}, after {after:.2}"
    );
    assert!(
        delayed >= 100.0 && delayed >= baseline + 95.0,
        "rtt {delayed} ms with a 100 ms delay (baseline {baseline})"
    );
    assert!(
        unaffected < 50.0,
        "a peer outside the fault was delayed: {unaffected} ms"
    );
    assert!(after < 50.0, "still delayed after the revert: {after} ms");
    must(&source.name, "rm -rf /usr/local/lib/butterfly");
    bench.assert_all_clean(&[&source.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn network_loss_drops_about_the_given_share() {
    let (_serial, (source, target), bench) = setup(|| (host("compute1"), host("compute2")));
    let fault = Fault::NetworkLoss {
        percent: Percent::new(50.0).unwrap(),
        direction: Direction::Egress,
        peers: vec![peer(&target)],
        ports: vec![],
    };
    let ping = format!(
        "ping -q -c 100 -i 0.01 -W 1 {} | grep -o '[0-9.]*% packet loss' | cut -d% -f1",
        address(&target)
    );
    let active = bench.inject(&plan(&fault, &source, None, SECONDS));
    let loss: f64 = observe(&source.name, &ping).1.trim().parse().unwrap();
    bench.revert(&active);
    let after: f64 = observe(&source.name, &ping).1.trim().parse().unwrap();
    assert!(
        (25.0..=75.0).contains(&loss),
        "loss {loss}% with a 50% fault"
    );
    assert_eq!(after, 0.0, "loss after revert");
    bench.assert_all_clean(&[&source.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn network_partition_cuts_one_peer_only_and_keeps_ssh() {
    let (_serial, (source, target, other), bench) =
        setup(|| (host("compute1"), host("compute2"), host("controller")));
    let fault = Fault::NetworkPartition {
        peers: vec![peer(&target)],
        ports: vec![],
    };
    let reach = |to: &injector::HostSpec| {
        observe(
            &source.name,
            &format!("ping -q -c 2 -i 0.2 -W 1 {}", address(to)),
        )
        .0
    };
    assert!(reach(&target));
    let active = bench.inject(&plan(&fault, &source, None, SECONDS));
    assert!(!reach(&target), "the partitioned peer is still reachable");
    assert!(reach(&other), "a peer outside the partition was cut");
    assert!(
        observe(&source.name, "true").0,
        "ssh to the partitioned host broke"
    );
    bench.revert(&active);
    assert!(reach(&target));
    bench.assert_all_clean(&[&source.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn network_reset_refuses_connections_on_a_port() {
    let (_serial, (server, client), bench) = setup(|| (host("compute2"), host("compute1")));
    let sink = tcp_sink(&server.name, 9312);
    let connect = format!(
        "socat -u OPEN:/dev/null TCP:{}:9312,connect-timeout=3 2>&1",
        address(&server)
    );
    assert!(observe(&client.name, &connect).0);
    let active = bench.inject(&plan(
        &Fault::NetworkReset {
            ports: vec![9312],
            peers: vec![],
        },
        &server,
        None,
        SECONDS,
    ));
    let (ok, message) = observe(&client.name, &connect);
    assert!(
        !ok && message.contains("refused"),
        "expected a reset, got ok={ok}: {message}"
    );
    bench.revert(&active);
    assert!(observe(&client.name, &connect).0);
    drop(sink);
    bench.assert_all_clean(&[&server.name]);
}

/// A fresh SSH connection to a host (no ControlMaster reuse) runs `true` and exits 0.
fn fresh_ssh_answers(host: &str) -> bool {
    std::process::Command::new("ssh")
        .arg("-F")
        .arg(testbed_dir().join("ssh/config"))
        .args([
            "-o",
            "ControlPath=none",
            "-o",
            "ConnectTimeout=5",
            host,
            "true",
        ])
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// The harshest network faults (the lowest rate tc takes, egress and ingress, and 100 % loss
/// naming no peer or port) cut the host's other traffic but leave its SSH control channel
/// answering: the engine's own check passes, a fresh command over the injector's connection
/// and a fresh ssh connection both succeed, and the revert leaves no qdisc, ifb or nft table.
#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn the_control_channel_answers_under_the_harshest_network_faults() {
    let (_serial, (target, other), bench) = setup(|| (host("compute2"), host("compute1")));
    // A source on each host: `fetch(from, to)` comes short unless `to` receives 256 KiB from
    // `from` within 3 s, so an egress limit on the target shows on fetches from it and an
    // ingress limit on fetches into it.
    let sources: Vec<TestUnit> = [&target, &other]
        .iter()
        .map(|host| {
            let unit = TestUnit::start(
                &host.name,
                &tag(),
                "exec socat TCP-LISTEN:9314,fork,reuseaddr SYSTEM:'head -c 262144 /dev/zero'",
            );
            assert_listening(&host.name, 9314);
            unit
        })
        .collect();
    let fetch = |from: &injector::HostSpec, to: &injector::HostSpec| {
        must(
            &to.name,
            &format!(
                "timeout 3 socat -u TCP:{}:9314,connect-timeout=2 - 2>/dev/null | wc -c",
                address(from)
            ),
        )
    };
    assert_eq!(fetch(&target, &other), "262144");
    assert_eq!(fetch(&other, &target), "262144");
    let minimum_rate = |direction| Fault::NetworkBandwidth {
        rate_bits_per_second: 8,
        burst: Bytes(1600),
        interface: InterfaceName::new("eth0").unwrap(),
        direction,
    };
    let total_loss = Fault::NetworkLoss {
        percent: Percent::new(100.0).unwrap(),
        direction: Direction::Both,
        peers: vec![],
        ports: vec![],
    };
    for fault in [
        minimum_rate(Direction::Egress),
        minimum_rate(Direction::Ingress),
        total_loss,
    ] {
        let ingress = matches!(
            fault,
            Fault::NetworkBandwidth {
                direction: Direction::Ingress,
                ..
            }
        );
        let (from, to) = if ingress {
            (&other, &target)
        } else {
            (&target, &other)
        };
        let active = bench.inject(&plan(&fault, &target, None, SECONDS));
        assert_ne!(
            fetch(from, to),
            "262144",
            "{fault:?} let the transfer through"
        );
        let output = bench
            .runtime
            .block_on(bench.injector.connections().run(&target, "echo still here"))
            .expect("the injector's connection answers");
        assert_eq!(output.stdout.trim(), "still here");
        assert!(
            fresh_ssh_answers(&target.name),
            "a fresh ssh connection fails under {fault:?}"
        );
        bench.revert(&active);
        assert_eq!(
            fetch(from, to),
            "262144",
            "{fault:?} is still in effect after revert"
        );
    }
    drop(sources);
    bench.assert_all_clean(&[&target.name, &other.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn network_bandwidth_egress_and_ingress() {
    let (_serial, (server, client), bench) = setup(|| (host("compute2"), host("compute1")));
    // The server sends 256 KiB to each connection; the client times the transfer.
    let source = TestUnit::start(
        &server.name,
        &tag(),
        "exec socat TCP-LISTEN:9313,fork,reuseaddr SYSTEM:'head -c 262144 /dev/zero'",
    );
    assert_listening(&server.name, 9313);
    let fetch_ms = || -> f64 {
        let out = must(
            &client.name,
            &format!(
                "s=$(date +%s%N); n=$(socat -u TCP:{}:9313 - | wc -c); e=$(date +%s%N); echo \"$n $(( (e - s) / 1000000 ))\"",
                address(&server)
            ),
        );
        let fields: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(fields[0], "262144", "short transfer");
        fields[1].parse().unwrap()
    };
    let baseline = fetch_ms();
    // 1 Mbit/s: 256 KiB take about 2.1 s.
    let fetch_ms_limited = |direction: Direction, on: &injector::HostSpec| -> f64 {
        let limit = Fault::NetworkBandwidth {
            rate_bits_per_second: 1_000_000,
            burst: Bytes(16384),
            interface: InterfaceName::new("eth0").unwrap(),
            direction,
        };
        let active = bench.inject(&plan(&limit, on, None, SECONDS));
        let limited = fetch_ms();
        bench.revert(&active);
        limited
    };
    let limited = fetch_ms_limited(Direction::Egress, &server);
    let limited_in = fetch_ms_limited(Direction::Ingress, &client);
    let after = fetch_ms();
    eprintln!(
        "256 KiB transfer ms: baseline {baseline}, egress-limited {limited}, ingress-limited {limited_in}, after {after}"
    );
    assert!(
        limited >= 1500.0,
        "egress limit not in effect: {limited} ms"
    );
    assert!(
        limited_in >= 1500.0,
        "ingress limit not in effect: {limited_in} ms"
    );
    assert!(after < 1000.0, "still limited after revert: {after} ms");
    drop(source);
    bench.assert_all_clean(&[&server.name, &client.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn disk_fill_by_percent_and_to_full_with_force() {
    let (_serial, host, bench) = setup(|| host("compute2"));
    let used = || -> u32 {
        must(
            &host.name,
            "df -P /srv | awk 'NR == 2 {print $5}' | tr -d %",
        )
        .parse()
        .unwrap()
    };
    let before = used();
    let half = Fault::DiskFill {
        path: PathName::new("/srv").unwrap(),
        amount: FillAmount::Percent(Percent::new(60.0).unwrap()),
        force: false,
    };
    let active = bench.inject(&plan(&half, &host, None, SECONDS));
    assert!(
        (59..=62).contains(&used()),
        "usage {}% for a 60% fill",
        used()
    );
    bench.revert(&active);
    assert_eq!(used(), before);
    let full = Fault::DiskFill {
        path: PathName::new("/srv").unwrap(),
        amount: FillAmount::Percent(Percent::new(100.0).unwrap()),
        force: true,
    };
    let active = bench.inject(&plan(&full, &host, None, SECONDS));
    let (wrote, _) = observe(
        &host.name,
        "dd if=/dev/zero of=/srv/bfly-probe bs=64k count=16 2>/dev/null; r=$?; rm -f /srv/bfly-probe; exit $r",
    );
    assert!(!wrote, "a 1 MiB write succeeded on a full disk");
    bench.revert(&active);
    assert_eq!(used(), before);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn cpu_and_memory_stress_run_bounded_and_stop_on_revert() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let assert_no_stressor = || {
        assert!(
            !observe(&host.name, "pgrep stress-ng").0,
            "stress-ng still runs"
        )
    };
    let cpu = Fault::CpuStress {
        workers: 1,
        load: Percent::new(100.0).unwrap(),
    };
    let active = bench.inject(&plan(&cpu, &host, None, SECONDS));
    let unit = format!("bfly-cpu-{}.service", active.plan.id);
    // CPU time of the stressor's processes grows by at least 0.3 s per wall-clock second.
    let cpu_ticks = || -> u64 {
        must(&host.name, &format!("for p in $(cat /sys/fs/cgroup/unified$(systemctl show -p ControlGroup --value {unit})/cgroup.procs); do awk '{{print $14 + $15}}' /proc/$p/stat; done | awk '{{s += $1}} END {{print s + 0}}'"))
            .parse()
            .unwrap()
    };
    let first = cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let second = cpu_ticks();
    assert!(
        second - first >= 30,
        "stress-ng used {} ticks in 1 s",
        second - first
    );
    bench.revert(&active);
    assert_no_stressor();

    let memory = Fault::MemoryStress {
        size: Bytes(64 << 20),
        workers: 1,
    };
    let active = bench.inject(&plan(&memory, &host, None, SECONDS));
    let rss: u64 = must(&host.name, "for p in $(pgrep stress-ng); do awk '/^VmRSS:/ {print $2}' /proc/$p/status; done | awk '{s += $1} END {printf \"%.0f\", s * 1024}'").parse().unwrap();
    assert!(
        rss >= 48 << 20,
        "stress-ng holds only {rss} bytes of 64 MiB"
    );
    bench.revert(&active);
    assert_no_stressor();
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn clock_skew_shifts_the_service_clock_and_revert_restores_it() {
    let (_serial, host, bench) = setup(|| host("compute1"));
    let unit = ticker_unit(&host.name);
    let service = unit.service();
    let skew = || -> i64 {
        let seen: i64 = must(&host.name, &format!("cat {}/now", unit.dir))
            .parse()
            .unwrap();
        let real: i64 = must(&host.name, "date +%s").parse().unwrap();
        seen - real
    };
    assert!(eventually(Duration::from_secs(5), || count(&unit) > 0));
    let active = bench.inject(&plan(
        &Fault::ClockSkew {
            offset_seconds: -7200,
        },
        &host,
        Some(&service),
        SECONDS,
    ));
    assert!(
        eventually(Duration::from_secs(5), || (skew() + 7200).abs() <= 2),
        "skew {} s, expected -7200",
        skew()
    );
    bench.revert(&active);
    assert!(
        eventually(Duration::from_secs(5), || skew().abs() <= 2),
        "skew {} s after revert",
        skew()
    );
    drop(unit);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn the_dead_man_switch_reverts_on_the_host_by_itself() {
    let (_serial, host, bench) = setup(|| host("compute2"));
    let fault = Fault::NetworkReset {
        ports: vec![9314],
        peers: vec![],
    };
    let short = plan(&fault, &host, None, Duration::from_secs(1));
    let settings_grace = injector::EngineSettings::default().grace;
    let active = bench.inject(&short);
    assert!(active.armed, "no dead-man switch was armed");
    let table = format!("bfly_{}", short.id);
    assert!(
        observe(
            &host.name,
            &format!("nft list table inet {table} >/dev/null")
        )
        .0
    );
    // Pretend the runner died: never call revert; the timer fires after duration + grace.
    assert!(
        eventually(settings_grace + Duration::from_secs(10), || !observe(
            &host.name,
            &format!("nft list table inet {table} >/dev/null 2>&1")
        )
        .0),
        "the dead-man switch did not remove {table}"
    );
    // The journal still says pending; recover finds the host clean and records it.
    let connections = injector::transport::Connections::new(Default::default());
    let report = bench
        .runtime
        .block_on(injector::recover(
            bench.run_dir.path(),
            &connections,
            &injector::EngineSettings::default(),
        ))
        .unwrap();
    bench.runtime.block_on(connections.close());
    assert_eq!(report.len(), 1);
    assert!(report[0].outcome.is_ok(), "{:?}", report[0].outcome);
    bench.assert_all_clean(&[&host.name]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn an_unknown_host_key_is_refused_with_its_fingerprint() {
    let _serial = serial();
    let mut host = host("compute1");
    let empty = tempfile::NamedTempFile::new().unwrap();
    if let injector::Reach::Ssh(ssh) = &mut host.reach {
        ssh.known_hosts = Some(empty.path().to_owned());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = runtime
        .block_on(injector::transport::Transport::connect(
            &host,
            &Default::default(),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("compute1") && error.contains("SHA256:"),
        "{error}"
    );
}
