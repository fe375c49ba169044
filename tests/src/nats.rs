//! [`Nats`]: a real NATS server (Debian's `nats-server`, installed by `scripts/setup-nats.sh`)
//! started by a test on a port the server picks itself (it writes the port to a file, so no
//! port is picked free and then lost to a neighbour), killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// How long a server may take to listen on a busy machine.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A running NATS server of this test's own.
pub struct Nats {
    dir: tempfile::TempDir,
    child: Child,
    url: String,
}

impl Nats {
    /// Starts a server on a loopback port of its choosing, taking messages of up to 8 MiB (a
    /// cluster forwards whole client frames; larger ones go in parts).
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("nats.conf");
        std::fs::write(
            &config,
            format!("host: 127.0.0.1\nport: -1\nmax_payload: 8MB\nports_file_dir: \"{}\"\n", dir.path().display()),
        )?;
        let child = Command::new(binary())
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("could not start nats-server (is it installed? scripts/setup-nats.sh)")?;
        let started = Instant::now();
        let url = loop {
            if let Some(url) = read_port_file(&dir)? {
                break url;
            }
            if started.elapsed() > READY_WITHIN {
                bail!("nats-server did not write its ports file within {READY_WITHIN:?}");
            }
            // The ports file appears once: polled, with nothing else to wait on.
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Ok(Self { dir, child, url })
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The temporary directory the server keeps its files in.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Kills the server.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}

/// `nats-server` from `PATH`, else where Debian puts it.
fn binary() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/nats-server");
    if sbin.exists() { sbin } else { PathBuf::from("nats-server") }
}

/// The client URL from the ports file, once the server wrote it.
fn read_port_file(dir: &tempfile::TempDir) -> anyhow::Result<Option<String>> {
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "ports") {
            let text = std::fs::read_to_string(&path)?;
            let Ok(ports) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
            if let Some(url) = ports["nats"][0].as_str() {
                return Ok(Some(url.to_owned()));
            }
        }
    }
    Ok(None)
}
