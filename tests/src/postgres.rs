//! [`Postgres`]: a real PostgreSQL server (Debian's `postgresql` package, installed by
//! `scripts/setup-postgres.sh`) started by a test in a temporary directory, and killed when
//! dropped. It listens only on a Unix socket in its own directory, so tests running side by side
//! never reach each other's server (a TCP port picked free can be taken before it is bound).
//! Postgres will not run as root: as root, the harness runs it as the `postgres` user.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// The role the tests connect as; trusted on loopback, as only this test's processes reach it.
const USER: &str = "hindsight";
/// The port, which here only names the socket file in the server's directory.
const PORT: u16 = 5432;
/// How long a server may take to accept connections on a busy machine.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A running PostgreSQL server of this test's own.
pub struct Postgres {
    /// Holds the data directory; removed after the server is killed.
    _dir: tempfile::TempDir,
    data: PathBuf,
    child: Option<Child>,
    /// The user and group the server runs as, when the tests run as root.
    owner: Option<(u32, u32)>,
    /// Where `postgres` is.
    bin: PathBuf,
}

impl Postgres {
    /// Makes a database cluster in a temporary directory and starts a server on it.
    pub async fn start() -> anyhow::Result<Self> {
        tokio::task::spawn_blocking(Self::start_blocking).await?
    }

    fn start_blocking() -> anyhow::Result<Self> {
        let bin = binaries()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let owner = if is_root() { Some(postgres_user()?) } else { None };
        if let Some((uid, gid)) = owner {
            // The server's user must reach its directory through the temporary one.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
        }
        let initdb = run_as(owner, Command::new(bin.join("initdb")))
            .args(["--auth=trust", "--encoding=UTF8", "--no-sync", "--username", USER, "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .context("could not run initdb (is the postgresql package installed? scripts/setup-postgres.sh)")?;
        ensure!(initdb.status.success(), "initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        let child = launch(&bin, &data, owner)?;
        Ok(Self { _dir: dir, data, child: Some(child), owner, bin })
    }

    /// Stops the server as an operator's restart does (a fast shutdown: open connections are
    /// cut, committed transactions stay) and waits for it to exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { bail!("postgres is not running") };
        let pid = child.id().to_string();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let kill = Command::new("kill").args(["-INT", &pid]).status()?;
            ensure!(kill.success(), "`kill -INT {pid}` failed");
            let status = child.wait()?;
            ensure!(status.success(), "postgres exited with {status}");
            Ok(())
        })
        .await?
    }

    /// Starts the stopped server again, on the same data and socket.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.is_none(), "postgres is running");
        let (data, owner, bin) = (self.data.clone(), self.owner, self.bin.clone());
        let child = tokio::task::spawn_blocking(move || launch(&bin, &data, owner)).await??;
        self.child = Some(child);
        Ok(())
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        url(&self.data, name)
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let admin = self.url("postgres");
        let create = format!("CREATE DATABASE \"{name}\"");
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)?;
            client.batch_execute(&create)?;
            Ok(())
        })
        .await??;
        Ok(self.url(name))
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The folder of `initdb` and `postgres`: Debian keeps them out of `PATH`, under
/// `/usr/lib/postgresql/<version>/bin`; the newest is taken.
fn binaries() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).find(|dir| dir.join("initdb").exists()))
        .unwrap_or_default();
    found.context("no PostgreSQL server found: run scripts/setup-postgres.sh (Debian's postgresql package)")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // `/proc/self` belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, which Debian's package makes.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("no `postgres` user: run scripts/setup-postgres.sh (Debian's postgresql package makes it)")?;
    let fields: Vec<&str> = line.split(':').collect();
    Ok((fields.get(2).context("a uid")?.parse()?, fields.get(3).context("a gid")?.parse()?))
}

/// `command`, run as `owner` if given (the tests run as root).
fn run_as(owner: Option<(u32, u32)>, mut command: Command) -> Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

/// The URL of database `name` through the socket in `data` (the path percent-encoded as the
/// host, as libpq and rust-postgres read it).
fn url(data: &Path, name: &str) -> String {
    let host: String =
        data.display()
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                    c.to_string()
                } else {
                    format!("%{:02X}", c as u32)
                }
            })
            .collect();
    format!("postgres://{USER}@{host}:{PORT}/{name}")
}

/// Starts `postgres` on `data`, listening on its socket alone, and waits until it accepts
/// connections.
fn launch(bin: &Path, data: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(data.join("server.log"))?;
    let mut child = run_as(owner, Command::new(bin.join("postgres")))
        .arg("-D")
        .arg(data)
        .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", data.display()))
        // Durable as production is: a commit is on disk when it returns.
        .args(["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=50"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("could not start postgres")?;
    let url = url(data, "postgres");
    let log = || std::fs::read_to_string(data.join("server.log")).unwrap_or_default();
    let started = Instant::now();
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => return Ok(child),
            Err(e) if started.elapsed() > READY_WITHIN => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("postgres did not accept connections within {READY_WITHIN:?}: {e}; its log:\n{}", log())
            }
            Err(_) => {
                if let Some(status) = child.try_wait()? {
                    bail!("postgres exited with {status}; its log:\n{}", log());
                }
                // Polling a process that gives no event to wait on; bounded by READY_WITHIN.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
