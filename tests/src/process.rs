//! [`ServerProcess`]: the real `hindsight` binary (built as `hindsight-under-test`) run as a child
//! process, for what only a process shows: restarts on the same data, SIGTERM and SIGKILL, and a
//! log that a panic in any task cannot hide from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{self, BoardCreated};
use crate::within;

/// The name of the binary target this package builds from `hindsight_server::cli_main`.
const BINARY: &str = "hindsight-under-test";
/// What the server logs once its socket is bound.
const LISTENING: &str = "Hindsight is listening on http://";

/// A running `hindsight` child process. Killed if dropped while running.
pub struct ServerProcess {
    child: Child,
    address: SocketAddr,
    /// Every line the process wrote to stderr so far, without colour codes.
    log: Arc<Mutex<Vec<String>>>,
    /// The task that copies stderr into `log`; it ends when the process closes stderr.
    reader: Option<JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts the server on `127.0.0.1:0` with its database in `data_dir`, and waits until it
    /// answers `GET /healthz`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(data_dir, &[]).await
    }

    /// Like [`start`](Self::start), with extra command-line flags (`--max-message-bytes 65536`).
    pub async fn start_with(data_dir: &Path, flags: &[&str]) -> anyhow::Result<Self> {
        let filter = std::env::var("HINDSIGHT_TEST_LOG").unwrap_or_else(|_| "info".into());
        Self::start_logging(data_dir, flags, &filter).await
    }

    /// Like [`start_with`](Self::start_with), logging what the `RUST_LOG` filter `log` lets
    /// through (`debug`, say).
    pub async fn start_logging(data_dir: &Path, flags: &[&str], log: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(binary()?);
        command
            .args(["--listen", "127.0.0.1:0", "--log-format", "text", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("RUST_LOG", log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The flags above must be the whole configuration, whatever this shell exported.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HINDSIGHT_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().context("could not start the server binary")?;
        let stderr = child.stderr.take().context("the child's stderr is piped")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = oneshot::channel();
        let reader = tokio::spawn(copy_log(stderr, Arc::clone(&log), address_tx));
        let mut process = Self { child, address: SocketAddr::from(([127, 0, 0, 1], 0)), log, reader: Some(reader) };

        let address = within("the server to log its address", async {
            address_rx.await.context("the server closed stderr before it listened")
        })
        .await;
        process.address = match address {
            Ok(address) => address,
            Err(e) => {
                let _ = process.kill9().await;
                bail!("{e:#}; its log:\n{}", process.log_text());
            }
        };
        let health = http::get(&format!("{}/healthz", process.http_url())).await?;
        ensure!(health.status == 200 && health.text() == "ok", "/healthz answered {} {}", health.status, health.text());
        Ok(process)
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    /// The process id, while the process runs (to read `/proc/<pid>/status`, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A field of the process's `/proc/<pid>/status`, in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.pid().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let line = status.lines().find(|l| l.starts_with(field)).with_context(|| format!("no {field} for {pid}"))?;
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).with_context(|| format!("bad line `{line}`"))
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the process.
    pub async fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("the server has exited")?;
        let kill = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().await?;
        ensure!(kill.success(), "`kill -{signal} {pid}` failed: {kill}");
        Ok(())
    }

    /// Creates a board through the HTTP API.
    pub async fn create_board(&self, title: &str, template: &str) -> anyhow::Result<BoardCreated> {
        http::create_board(&self.http_url(), title, template).await
    }

    /// Sends SIGTERM and waits for the process to exit; a graceful shutdown exits with success.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the server has already exited")?;
        let kill = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        ensure!(kill.success(), "`kill -TERM {pid}` failed: {kill}");
        let status = self.wait("the server to exit after SIGTERM").await?;
        ensure!(status.success(), "the server exited with {status} after SIGTERM; its log:\n{}", self.log_text());
        Ok(())
    }

    /// Kills the process with SIGKILL, as a crash or a power cut would, and reaps it.
    pub async fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        self.child.start_kill().context("could not send SIGKILL")?;
        self.wait("the server to die after SIGKILL").await
    }

    /// Waits for the process to exit and for its last log lines.
    async fn wait(&mut self, what: &str) -> anyhow::Result<ExitStatus> {
        let status = within(what, async { Ok(self.child.wait().await?) }).await?;
        if let Some(reader) = self.reader.take() {
            within("the server's stderr to close", async { Ok(reader.await?) }).await?;
        }
        Ok(status)
    }

    /// The log lines so far. After [`stop`](Self::stop) or [`kill9`](Self::kill9), all of them.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|log| log.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn log_text(&self) -> String {
        self.log().join("\n")
    }

    /// Fails the test if any thread of the server panicked (Rust prints `... panicked at ...` to
    /// stderr even when tokio catches the panic of a task).
    pub fn assert_no_panics(&self) {
        let log = self.log();
        let panics: Vec<&String> = log.iter().filter(|line| line.contains("panicked")).collect();
        assert!(panics.is_empty(), "the server panicked: {panics:#?}\nits whole log:\n{}", log.join("\n"));
    }
}

/// The server binary: Cargo tells integration tests where it is, at build and at run time.
fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{BINARY}")) {
        return Ok(PathBuf::from(path));
    }
    // Older Cargo sets the variable only at build time. Test binaries live in
    // `target/<profile>/deps`, the server binary one level up; the benchmarks' binaries live
    // beside it.
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("no target directory")?;
    let path =
        [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .map(|dir| dir.join(BINARY))
            .find(|path| path.exists())
            .with_context(|| format!("{BINARY} is not built; run the tests through `cargo test -p hindsight-tests`"))?;
    Ok(path)
}

/// Copies the child's stderr into `log` (and into the test's output, shown when a test fails),
/// and reports the address from the "listening" line.
async fn copy_log(stderr: ChildStderr, log: Arc<Mutex<Vec<String>>>, address: oneshot::Sender<SocketAddr>) {
    let mut address = Some(address);
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = strip_ansi(&line);
        eprintln!("[server] {line}");
        if let Some(found) = line.split(LISTENING).nth(1).and_then(|rest| rest.split_whitespace().next())
            && let Ok(found) = found.parse()
            && let Some(tx) = address.take()
        {
            let _ = tx.send(found);
        }
        match log.lock() {
            Ok(mut log) => log.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`), in case the logger colours its output.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl crate::Endpoint for ServerProcess {
    fn http_url(&self) -> String {
        ServerProcess::http_url(self)
    }

    fn ws_url(&self) -> String {
        ServerProcess::ws_url(self)
    }
}
