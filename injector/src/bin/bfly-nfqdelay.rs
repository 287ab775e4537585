//! `bfly-nfqdelay`: delays every packet of an NFQUEUE queue by a fixed time plus jitter, in order.
//!
//! It is the network-delay mechanism for kernels without `sch_netem`: iptables' `NFQUEUE` target
//! (with `--queue-bypass`) hands matching packets to this process, which gives each its verdict
//! (accept) once its release time has come. Release times never decrease, so packets keep their
//! order even with jitter. The injector runs it as a transient systemd unit and stops it on revert.
//!
//! Usage: `bfly-nfqdelay --queue N --delay-ms MS [--jitter-ms MS]`

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

struct Args {
    queue: u16,
    delay: Duration,
    jitter: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut queue = None;
    let mut delay = None;
    let mut jitter = Duration::ZERO;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
        };
        match flag.as_str() {
            "--queue" => {
                queue = Some(
                    u16::try_from(number()?)
                        .map_err(|_| format!("--queue {value} is too large"))?,
                )
            }
            "--delay-ms" => delay = Some(Duration::from_millis(number()?)),
            "--jitter-ms" => jitter = Duration::from_millis(number()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(Args {
        queue: queue.ok_or("--queue is required")?,
        delay: delay.ok_or("--delay-ms is required")?,
        jitter,
    })
}

/// A small xorshift generator: jitter needs spread, not cryptographic quality.
struct Jitter(u64);

impl Jitter {
    fn next(&mut self, span: Duration) -> i128 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = span.as_micros() as i128;
        if span == 0 {
            return 0;
        }
        (self.0 % (2 * span as u64 + 1)) as i128 - span
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut queue =
        nfq::Queue::open().map_err(|e| format!("cannot open the netfilter queue socket: {e}"))?;
    queue
        .bind(args.queue)
        .map_err(|e| format!("cannot bind queue {}: {e}", args.queue))?;
    queue
        .set_fail_open(args.queue, true)
        .map_err(|e| format!("cannot set fail-open: {e}"))?;
    queue
        .set_queue_max_len(args.queue, 16_384)
        .map_err(|e| format!("cannot set the queue length: {e}"))?;
    queue
        .set_copy_range(args.queue, 64)
        .map_err(|e| format!("cannot set the copy range: {e}"))?;
    queue.set_nonblocking(true);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9)
        | 1;
    let mut jitter = Jitter(seed);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut last_release = Instant::now();
    loop {
        loop {
            match queue.recv() {
                Ok(message) => {
                    let offset = args.delay.as_micros() as i128 + jitter.next(args.jitter);
                    let release = Instant::now() + Duration::from_micros(offset.max(0) as u64);
                    last_release = release.max(last_release);
                    held.push_back((last_release, message));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) => return Err(format!("receiving from queue {}: {error}", args.queue)),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(release, _)| *release <= now) {
            if let Some((_, mut message)) = held.pop_front() {
                message.set_verdict(nfq::Verdict::Accept);
                queue
                    .verdict(message)
                    .map_err(|e| format!("verdict on queue {}: {e}", args.queue))?;
            }
        }
        // Sleep until the next release, but wake often enough to pick up new packets promptly.
        let pause = held
            .front()
            .map(|(release, _)| release.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_micros(500))
            .min(Duration::from_micros(500));
        std::thread::sleep(pause);
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!(
                "bfly-nfqdelay: {error}\nusage: bfly-nfqdelay --queue N --delay-ms MS [--jitter-ms MS]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bfly-nfqdelay: {error}");
            ExitCode::from(1)
        }
    }
}
