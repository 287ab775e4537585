//! Transports: how a command line reaches a host. SSH goes through the system `ssh` with one
//! ControlMaster connection per host (the `openssh` crate's native mux: each command is a new
//! channel on that connection, one round trip when warm). Local runs `sh -c` on this machine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, Semaphore};

use crate::Error;
use crate::host::{HostSpec, Reach, SshSpec};

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// True on exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A short description for error messages: exit code and the last stderr line.
    pub fn describe(&self) -> String {
        let last = self
            .stderr
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("")
            .trim();
        match self.code {
            Some(code) if last.is_empty() => format!("exit {code}"),
            Some(code) => format!("exit {code}: {last}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

/// Timeouts and limits of the transports.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Time to establish an SSH connection.
    pub connect_timeout: Duration,
    /// Time any single command may take.
    pub command_timeout: Duration,
    /// Commands in flight at once across all hosts (fan-out bound).
    pub max_parallel: usize,
    /// Where SSH control sockets live.
    pub control_dir: PathBuf,
}

impl Default for TransportSettings {
    fn default() -> TransportSettings {
        TransportSettings {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(60),
            max_parallel: 16,
            control_dir: std::env::temp_dir(),
        }
    }
}

/// A connection to one host.
#[derive(Debug)]
pub enum Transport {
    /// This machine, optionally through a command prefix (see [`Reach::Exec`]).
    Local {
        /// The prefix argv (empty: plain `sh -c`).
        prefix: Vec<String>,
    },
    /// An SSH ControlMaster session.
    Ssh {
        /// The host's name (for messages).
        host: String,
        /// The session.
        session: Box<openssh::Session>,
    },
}

impl Transport {
    /// Connects to a host (a no-op for local). Host keys are checked strictly against the host's
    /// known_hosts file unless the host explicitly opted out, in which case a warning is logged
    /// on every connect.
    pub async fn connect(
        host: &HostSpec,
        settings: &TransportSettings,
    ) -> Result<Transport, Error> {
        match &host.reach {
            Reach::Local => Ok(Transport::Local { prefix: Vec::new() }),
            Reach::Exec { prefix } => Ok(Transport::Local {
                prefix: prefix.clone(),
            }),
            Reach::Ssh(ssh) => connect_ssh(&host.name, ssh, settings).await,
        }
    }

    /// Runs one command line (already quoted and wrapped, see [`crate::shell::wrap`]).
    pub async fn run(&self, line: &str, timeout: Duration) -> Result<Output, Error> {
        self.run_with_stdin(line, None, timeout).await
    }

    /// Runs one command line, feeding `stdin` to it when given.
    pub async fn run_with_stdin(
        &self,
        line: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, Error> {
        let work = async {
            match self {
                Transport::Local { prefix } => run_local(prefix, line, stdin).await,
                Transport::Ssh { host, session } => run_ssh(host, session, line, stdin).await,
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                host: self.host_name().to_owned(),
                after: timeout,
                command: line.to_owned(),
            }),
        }
    }

    fn host_name(&self) -> &str {
        match self {
            Transport::Local { .. } => "local",
            Transport::Ssh { host, .. } => host,
        }
    }

    /// Closes the connection (ends the ControlMaster).
    pub async fn close(self) {
        if let Transport::Ssh { session, .. } = self {
            let _ = session.close().await;
        }
    }
}

async fn run_local(prefix: &[String], line: &str, stdin: Option<&[u8]>) -> Result<Output, Error> {
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut command = tokio::process::Command::new(program);
            command.args(args).arg("sh");
            command
        }
        None => tokio::process::Command::new("sh"),
    };
    command
        .arg("-c")
        .arg(line)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| Error::Transport(format!("local: cannot start sh: {e}")))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .await
            .map_err(|e| Error::Transport(format!("local: cannot write stdin: {e}")))?;
        drop(pipe);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Transport(format!("local: {e}")))?;
    Ok(Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

async fn run_ssh(
    host: &str,
    session: &openssh::Session,
    line: &str,
    stdin: Option<&[u8]>,
) -> Result<Output, Error> {
    let mut command = session.raw_command(line);
    let output = match stdin {
        None => command
            .stdin(openssh::Stdio::null())
            .output()
            .await
            .map_err(|e| Error::Transport(format!("{host}: {e}")))?,
        Some(data) => {
            let mut child = command
                .stdin(openssh::Stdio::piped())
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped())
                .spawn()
                .await
                .map_err(|e| Error::Transport(format!("{host}: {e}")))?;
            if let Some(mut pipe) = child.stdin().take() {
                pipe.write_all(data)
                    .await
                    .map_err(|e| Error::Transport(format!("{host}: cannot write stdin: {e}")))?;
                pipe.shutdown()
                    .await
                    .map_err(|e| Error::Transport(format!("{host}: cannot close stdin: {e}")))?;
            }
            child
                .wait_with_output()
                .await
                .map_err(|e| Error::Transport(format!("{host}: {e}")))?
        }
    };
    Ok(Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

async fn connect_ssh(
    name: &str,
    ssh: &SshSpec,
    settings: &TransportSettings,
) -> Result<Transport, Error> {
    let mut builder = openssh::SessionBuilder::default();
    builder
        .user(ssh.user.clone())
        .port(ssh.port)
        .connect_timeout(settings.connect_timeout.max(Duration::from_secs(1)))
        .server_alive_interval(Duration::from_secs(5))
        .control_directory(&settings.control_dir)
        // A runner killed with SIGKILL cannot close its master; an idle limit makes the orphan
        // exit by itself. Live connections that idled out are reopened (see `Connections::run`).
        .control_persist(openssh::ControlPersist::IdleFor(
            std::num::NonZeroUsize::new(60).expect("60 is not zero"),
        ));
    if let Some(identity) = &ssh.identity {
        builder.keyfile(identity);
    }
    if let Some(known_hosts) = &ssh.known_hosts {
        builder.user_known_hosts_file(known_hosts);
    }
    if ssh.insecure_accept_any_host_key {
        tracing::warn!(
            "host {name}: host key verification is DISABLED (insecure_accept_any_host_key); \
             a machine in the middle can run every fault command"
        );
        builder.known_hosts_check(openssh::KnownHosts::Accept);
    } else {
        builder.known_hosts_check(openssh::KnownHosts::Strict);
    }
    let connect = builder.connect_mux(&ssh.address);
    let session = match tokio::time::timeout(
        settings.connect_timeout + Duration::from_secs(2),
        connect,
    )
    .await
    {
        Ok(Ok(session)) => session,
        Ok(Err(error)) => {
            let message = error.to_string();
            let detail = std::error::Error::source(&error)
                .map(|source| source.to_string())
                .unwrap_or_default();
            let text = format!("{message} {detail}");
            if text.contains("Host key verification failed")
                || text.contains("host key")
                || text.contains("HOST IDENTIFICATION HAS CHANGED")
            {
                let offered = host_fingerprints(&ssh.address, ssh.port).await;
                return Err(Error::HostKey {
                    host: name.to_owned(),
                    address: format!("{}:{}", ssh.address, ssh.port),
                    offered,
                    known_hosts: ssh
                        .known_hosts
                        .as_ref()
                        .map(|path| path.display().to_string())
                        .unwrap_or_else(|| "~/.ssh/known_hosts".into()),
                });
            }
            return Err(Error::Connect {
                host: name.to_owned(),
                reason: format!("{message}; {detail}"),
            });
        }
        Err(_) => {
            return Err(Error::Connect {
                host: name.to_owned(),
                reason: format!("no connection within {:?}", settings.connect_timeout),
            });
        }
    };
    Ok(Transport::Ssh {
        host: name.to_owned(),
        session: Box::new(session),
    })
}

/// The fingerprints the server offers (via `ssh-keyscan | ssh-keygen -lf -`), for the error
/// message of a failed host key check.
async fn host_fingerprints(address: &str, port: u16) -> String {
    let line = format!(
        "ssh-keyscan -T 3 -p {} {} 2>/dev/null | ssh-keygen -lf - 2>/dev/null",
        port,
        crate::shell::quote(address)
    );
    match run_local(&[], &line, None).await {
        Ok(output) if !output.stdout.trim().is_empty() => output
            .stdout
            .lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match (fields.get(1), fields.last()) {
                    (Some(fingerprint), Some(kind)) => format!("{fingerprint} {kind}"),
                    _ => line.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "unknown (ssh-keyscan got no key)".to_owned(),
    }
}

/// One connection per host, opened on first use, with a bound on commands in flight.
#[derive(Debug)]
pub struct Connections {
    settings: TransportSettings,
    open: Mutex<HashMap<String, Arc<Transport>>>,
    permits: Arc<Semaphore>,
    commands: std::sync::atomic::AtomicU64,
}

impl Connections {
    /// An empty pool.
    pub fn new(settings: TransportSettings) -> Connections {
        let permits = Arc::new(Semaphore::new(settings.max_parallel.max(1)));
        Connections {
            settings,
            open: Mutex::new(HashMap::new()),
            permits,
            commands: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &TransportSettings {
        &self.settings
    }

    /// The connection to a host, connecting on first use.
    pub async fn get(&self, host: &HostSpec) -> Result<Arc<Transport>, Error> {
        let mut open = self.open.lock().await;
        if let Some(transport) = open.get(&host.name) {
            return Ok(transport.clone());
        }
        let transport = Arc::new(Transport::connect(host, &self.settings).await?);
        open.insert(host.name.clone(), transport.clone());
        Ok(transport)
    }

    /// Opens connections to many hosts at once, at most `max_parallel` at a time.
    pub async fn connect_all(&self, hosts: &[HostSpec]) -> Vec<Result<(), Error>> {
        use futures::stream::{self, StreamExt};
        stream::iter(hosts)
            .map(|host| async move { self.get(host).await.map(|_| ()) })
            .buffered(self.settings.max_parallel.max(1))
            .collect()
            .await
    }

    /// Runs a script on a host (wrapped in `sh -c`, with sudo when the host needs it), within
    /// the command timeout and the fan-out bound.
    pub async fn run(&self, host: &HostSpec, script: &str) -> Result<Output, Error> {
        self.run_with_stdin(host, script, None).await
    }

    /// Like [`Connections::run`], feeding `stdin`.
    pub async fn run_with_stdin(
        &self,
        host: &HostSpec,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Transport("connection pool closed".into()))?;
        let line = crate::shell::wrap(script, host.sudo);
        tracing::debug!(host = %host.name, command = %line, "run");
        self.commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let transport = self.get(host).await?;
        match transport
            .run_with_stdin(&line, stdin, self.settings.command_timeout)
            .await
        {
            // The master went away (idle limit, network blip): reconnect once and retry. A
            // transport error means the channel did not open, so the command did not run.
            Err(Error::Transport(reason)) if matches!(host.reach, Reach::Ssh(_)) => {
                tracing::info!(host = %host.name, "reconnecting after: {reason}");
                self.open.lock().await.remove(&host.name);
                let transport = self.get(host).await?;
                transport
                    .run_with_stdin(&line, stdin, self.settings.command_timeout)
                    .await
            }
            result => result,
        }
    }

    /// How many commands (round trips) this pool has sent so far.
    pub fn commands_run(&self) -> u64 {
        self.commands.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        let mut open = self.open.lock().await;
        for (_, transport) in open.drain() {
            if let Ok(transport) = Arc::try_unwrap(transport) {
                transport.close().await;
            }
        }
    }
}
