//! The two servers under test, as child processes: Hindsight's release binary and the reference
//! automerge-repo sync server (node). Started on port 0, pinned to one CPU when `taskset` exists,
//! and measured from `/proc`: CPU time, resident memory now and at its peak.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Kind {
    Hindsight,
    Reference,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hindsight => "Hindsight",
            Kind::Reference => "automerge-repo sync server",
        }
    }
}

/// How to start the servers.
#[derive(Debug, Clone)]
pub struct Launch {
    pub hindsight_bin: PathBuf,
    pub reference_dir: PathBuf,
    /// The CPU the server is pinned to, if any.
    pub cpu: Option<usize>,
}

/// A running server.
pub struct Server {
    pub kind: Kind,
    child: Child,
    pub port: u16,
    data: PathBuf,
    _dir: Option<TempDir>,
    launch: Launch,
}

/// What `/proc` says about the server process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// User + system CPU seconds, all threads.
    pub cpu_seconds: f64,
    /// Resident memory now, in KiB.
    pub rss_kib: u64,
    /// The most resident memory so far, in KiB.
    pub peak_rss_kib: u64,
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub async fn start(kind: Kind, launch: &Launch) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_path_buf();
        Self::spawn(kind, launch, data, Some(dir), 0).await
    }

    async fn spawn(
        kind: Kind,
        launch: &Launch,
        data: PathBuf,
        dir: Option<TempDir>,
        port: u16,
    ) -> anyhow::Result<Self> {
        let mut command = match launch.cpu.filter(|_| Path::new("/usr/bin/taskset").exists()) {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string());
                command
            }
            None => Command::new("env"),
        };
        match kind {
            Kind::Hindsight => {
                command
                    .arg(&launch.hindsight_bin)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--board-idle-secs", "3600"])
                    .args(["--max-connections", "100000"])
                    .args(["--max-peers-per-board", "100000"])
                    .args(["--max-messages-per-second", "100000"]);
                // One machine makes the whole load: no per-address limits (on a binary that has
                // them; an older one is measured as it was).
                if knows_flag(&launch.hindsight_bin, "--joins-per-minute").await {
                    command
                        .args(["--max-viewers-per-board", "100000"])
                        .args(["--max-connections-per-ip", "1000000"])
                        .args(["--board-creations-per-minute", "1000000"])
                        .args(["--joins-per-minute", "1000000"]);
                }
                command.env(
                    "RUST_LOG",
                    std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn,hindsight_server::server=info".into()),
                );
            }
            Kind::Reference => {
                command.arg("node").arg(launch.reference_dir.join("server.mjs")).arg(port.to_string()).arg(&data);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", kind.name()))?;
        // Hindsight logs its address on stderr; the reference server prints its port on stdout.
        let stdout = child.stdout.take().context("stdout")?;
        let stderr = child.stderr.take().context("stderr")?;
        let (found, mut port_rx) = tokio::sync::mpsc::channel::<u16>(1);
        tokio::spawn(watch(stdout, found.clone()));
        tokio::spawn(watch(stderr, found));
        let port = tokio::time::timeout(Duration::from_secs(30), port_rx.recv())
            .await
            .context("the server did not say where it listens")?
            .context("the server exited")?;
        Ok(Self { kind, child, port, data, _dir: dir, launch: launch.clone() })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU time and memory of the server process (the real server, not the `taskset` wrapper,
    /// which execs it).
    pub fn sample(&self) -> Sample {
        let Some(pid) = self.pid() else { return Sample::default() };
        let ticks = 100.0; // USER_HZ on Linux.
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which sits in parentheses and may hold spaces.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: f64 = fields.get(11)?.parse().ok()?;
                let stime: f64 = fields.get(12)?.parse().ok()?;
                Some((utime + stime) / ticks)
            })
            .unwrap_or(0.0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Sample { cpu_seconds, rss_kib: field("VmRSS:"), peak_rss_kib: field("VmHWM:") }
    }

    /// Stops the server (SIGTERM) and starts it again on the same port and data.
    pub async fn restart(mut self) -> anyhow::Result<Self> {
        let port = self.port;
        self.terminate().await?;
        let dir = self._dir.take();
        Self::spawn(self.kind, &self.launch.clone(), self.data.clone(), dir, port).await
    }

    async fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("{} did not stop on SIGTERM", self.kind.name())
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.terminate().await;
    }
}

/// Reads a child's output: reports the port it listens on, and echoes panics and errors.
async fn watch(output: impl tokio::io::AsyncRead + Unpin, found: tokio::sync::mpsc::Sender<u16>) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(port) = parse_port(&line) {
            let _ = found.send(port).await;
        } else if line.contains("panicked") || line.contains("ERROR") || std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!("server: {line}");
        }
    }
}

/// Finds the port in "listening 1234" (reference) or "... listening on http://127.0.0.1:1234".
fn parse_port(line: &str) -> Option<u16> {
    if let Some(rest) = line.strip_prefix("listening ") {
        return rest.trim().parse().ok();
    }
    let at = line.find("listening on http://")?;
    let address = line[at + "listening on http://".len()..].split_whitespace().next()?;
    address.rsplit_once(':')?.1.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()
}

/// True if the server binary's `--help` mentions `flag`.
async fn knows_flag(binary: &Path, flag: &str) -> bool {
    match Command::new(binary).arg("--help").output().await {
        Ok(output) => String::from_utf8_lossy(&output.stdout).contains(flag),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_found_in_both_servers_output() {
        assert_eq!(super::parse_port("listening 4123"), Some(4123));
        assert_eq!(
            super::parse_port(
                "2026-11-25T03:00:00Z  INFO hindsight_server::server: Hindsight is listening on http://127.0.0.1:39123 address=127.0.0.1:39123"
            ),
            Some(39123)
        );
    }
}
