//! The server's configuration: command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The address the server listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// The largest WebSocket message a client may send unless told otherwise: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Seconds an idle board stays in memory unless told otherwise.
pub const DEFAULT_BOARD_IDLE_SECS: u64 = 60;
/// WebSocket connections one server takes at once unless told otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Connections one board takes at once unless told otherwise.
pub const DEFAULT_MAX_PEERS_PER_BOARD: usize = 500;
/// Messages per second one connection may send, sustained, unless told otherwise.
pub const DEFAULT_MAX_MESSAGES_PER_SECOND: u32 = 200;
/// Default for [`Config::roti_min_raters`]: the least k-anonymity allows.
pub const DEFAULT_ROTI_MIN_RATERS: usize = hindsight_shared::schema::MIN_ROTI_RATERS;
/// Default for [`Config::max_participants_per_board`].
pub const DEFAULT_MAX_PARTICIPANTS_PER_BOARD: usize = 1_000;
/// Default for [`Config::max_document_bytes`]: 32 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;
/// Default for [`Config::max_board_bytes`]: 64 MiB.
pub const DEFAULT_MAX_BOARD_BYTES: usize = 64 * 1024 * 1024;
/// Default for [`Config::max_viewers_per_board`].
pub const DEFAULT_MAX_VIEWERS_PER_BOARD: usize = 500;
/// Default for [`Config::max_bytes_per_second`]: 1 MiB.
pub const DEFAULT_MAX_BYTES_PER_SECOND: u64 = 1024 * 1024;
/// Default for [`Config::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 500;
/// Default for [`Config::board_creations_per_minute`].
pub const DEFAULT_BOARD_CREATIONS_PER_MINUTE: u32 = 30;
/// Default for [`Config::joins_per_minute`].
pub const DEFAULT_JOINS_PER_MINUTE: u32 = 600;
/// Default for [`Config::http_timeout_secs`].
pub const DEFAULT_HTTP_TIMEOUT_SECS: u64 = 30;
/// Default for [`Config::max_team_retros`].
pub const DEFAULT_MAX_TEAM_RETROS: usize = 1_000;
/// Default for [`Config::max_team_actions`].
pub const DEFAULT_MAX_TEAM_ACTIONS: usize = 10_000;
/// Default for [`Config::lease_ms`].
pub const DEFAULT_LEASE_MS: u64 = 5_000;
/// Default for [`Config::ping_interval_secs`].
pub const DEFAULT_PING_INTERVAL_SECS: u64 = 20;

/// Hindsight: real-time retrospective and postmortem boards.
#[derive(Debug, Clone, Parser)]
#[command(name = "hindsight", version, about)]
pub struct Config {
    /// The address to listen on.
    #[arg(long, env = "HINDSIGHT_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The directory that holds the board database. Created if missing.
    #[arg(long, env = "HINDSIGHT_DATA_DIR", default_value = "./hindsight-data")]
    pub data_dir: PathBuf,

    /// Keep boards, desks, participants and team ledgers in this Postgres database
    /// (`postgres://user:password@host:5432/db`) instead of SQLite in the data directory. The
    /// tables are made (and migrated) at start. Never logged: it may hold a password.
    #[arg(long, env = "HINDSIGHT_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretUrl>,

    /// Cluster mode: the NATS server the nodes talk through (`nats://host:4222`). Needs
    /// `--database-url`: every node of the cluster uses the same Postgres database, and each
    /// board is owned by one node at a time. Never logged: it may hold a password.
    #[arg(long, env = "HINDSIGHT_NATS_URL", hide_env_values = true, requires = "database_url")]
    pub nats_url: Option<SecretUrl>,

    /// Cluster mode: this node's id, unique in the cluster (letters, digits, `-`, `_`).
    /// Defaults to a random one at each start.
    #[arg(long, env = "HINDSIGHT_NODE_ID")]
    pub node_id: Option<String>,

    /// Cluster mode: how long a node's ownership of a board lasts without renewal, in
    /// milliseconds. An owner that dies is replaced within about this long; an owner that
    /// cannot renew (paused, cut off from the database) stops serving the board before it.
    #[arg(long, env = "HINDSIGHT_LEASE_MS", default_value_t = DEFAULT_LEASE_MS,
          value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(500..))]
    pub lease_ms: u64,

    /// The URL browsers reach this server at, used in board links (for example
    /// `https://retro.example.com`). Defaults to `http://` plus the request's Host header.
    #[arg(long, env = "HINDSIGHT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "HINDSIGHT_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,

    /// Seconds a board without peers stays in memory before it is evicted.
    #[arg(long, env = "HINDSIGHT_BOARD_IDLE_SECS", default_value_t = DEFAULT_BOARD_IDLE_SECS)]
    pub board_idle_secs: u64,

    /// How many WebSocket connections the server takes at once; more are refused with 503.
    #[arg(long, env = "HINDSIGHT_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How many connections of participants (who joined and opened their desk) one board takes
    /// at once; more are refused with an error.
    #[arg(long, env = "HINDSIGHT_MAX_PEERS_PER_BOARD", default_value_t = DEFAULT_MAX_PEERS_PER_BOARD)]
    pub max_peers_per_board: usize,

    /// How many connections of viewers (who did not join) one board takes at once, apart from
    /// its participants' connections; more are refused with an error.
    #[arg(long, env = "HINDSIGHT_MAX_VIEWERS_PER_BOARD", default_value_t = DEFAULT_MAX_VIEWERS_PER_BOARD)]
    pub max_viewers_per_board: usize,

    /// How many messages per second one connection may send, sustained (bursts of twice as many
    /// pass). A connection that sends faster is closed with an error.
    #[arg(long, env = "HINDSIGHT_MAX_MESSAGES_PER_SECOND", default_value_t = DEFAULT_MAX_MESSAGES_PER_SECOND)]
    pub max_messages_per_second: u32,

    /// How many bytes per second one connection may send, sustained (bursts of one message more
    /// pass). A connection that sends faster is closed with an error.
    #[arg(long, env = "HINDSIGHT_MAX_BYTES_PER_SECOND", default_value_t = DEFAULT_MAX_BYTES_PER_SECOND)]
    pub max_bytes_per_second: u64,

    /// How many people may join one board, ever (each join stores a desk); more get `409`.
    #[arg(long, env = "HINDSIGHT_MAX_PARTICIPANTS_PER_BOARD", default_value_t = DEFAULT_MAX_PARTICIPANTS_PER_BOARD)]
    pub max_participants_per_board: usize,

    /// The fewest ROTI ratings whose results a board shows (at least 3): with fewer, each rater
    /// could tell the others' ratings apart, so nothing is shown.
    #[arg(long, env = "HINDSIGHT_ROTI_MIN_RATERS", default_value_t = DEFAULT_ROTI_MIN_RATERS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(3..))]
    pub roti_min_raters: usize,

    /// How many retros one team's ledger lists; starting another is refused (`409`) until a
    /// team key holder removes one.
    #[arg(long, env = "HINDSIGHT_MAX_TEAM_RETROS", default_value_t = DEFAULT_MAX_TEAM_RETROS)]
    pub max_team_retros: usize,

    /// How many action items one team's ledger holds; a retro that would bring more lists the
    /// ones left out, and starting another retro is refused (`409`) while the ledger is full.
    #[arg(long, env = "HINDSIGHT_MAX_TEAM_ACTIONS", default_value_t = DEFAULT_MAX_TEAM_ACTIONS)]
    pub max_team_actions: usize,

    /// How large one document (a board or a desk) may grow in storage, in bytes: its snapshot
    /// and the changes stored since. Changes that would make it larger are refused.
    #[arg(long, env = "HINDSIGHT_MAX_DOCUMENT_BYTES", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES)]
    pub max_document_bytes: usize,

    /// How large one board may grow in storage with all its participants' desks, in bytes.
    /// Changes that would make it larger are refused.
    #[arg(long, env = "HINDSIGHT_MAX_BOARD_BYTES", default_value_t = DEFAULT_MAX_BOARD_BYTES)]
    pub max_board_bytes: usize,

    /// How many connections (HTTP and WebSocket) one client address holds at once; more are
    /// refused (`503` for WebSockets, closed for plain TCP).
    #[arg(long, env = "HINDSIGHT_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,

    /// How many boards one client address may create per minute; more get `429`.
    #[arg(long, env = "HINDSIGHT_BOARD_CREATIONS_PER_MINUTE", default_value_t = DEFAULT_BOARD_CREATIONS_PER_MINUTE)]
    pub board_creations_per_minute: u32,

    /// How many times one client address may join boards per minute; more get `429`.
    #[arg(long, env = "HINDSIGHT_JOINS_PER_MINUTE", default_value_t = DEFAULT_JOINS_PER_MINUTE)]
    pub joins_per_minute: u32,

    /// Behind a reverse proxy: the request header that carries the client's address (for
    /// example `X-Real-IP`, or `X-Forwarded-For`, whose last address is taken). The per-address
    /// limits then count that address, and the proxy's own connections are not limited per
    /// address. Set it only when a proxy you run sets the header on every request.
    #[arg(long, env = "HINDSIGHT_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Seconds an HTTP connection may take to send a request's headers (or sit idle between
    /// requests), and a request to be answered; slower connections are closed.
    #[arg(long, env = "HINDSIGHT_HTTP_TIMEOUT_SECS", default_value_t = DEFAULT_HTTP_TIMEOUT_SECS)]
    pub http_timeout_secs: u64,

    /// Seconds between the server's pings on a WebSocket. A connection that sends nothing (not
    /// even a pong) for three of these is closed as idle. Lower it behind a proxy that drops
    /// quiet connections sooner.
    #[arg(long, env = "HINDSIGHT_PING_INTERVAL_SECS", default_value_t = DEFAULT_PING_INTERVAL_SECS)]
    pub ping_interval_secs: u64,

    /// Deletes boards (with everything their participants wrote) after this many days without
    /// a change or a join. Off unless set; fractions of a day are allowed.
    #[arg(long, env = "HINDSIGHT_BOARD_RETENTION_DAYS")]
    pub board_retention_days: Option<f64>,

    /// The log format.
    #[arg(long, env = "HINDSIGHT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines with key=value fields.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// A configuration with every default and the given data directory. Unlike [`Parser::parse`],
    /// it reads no environment variables, so embedding code and tests get exactly these values.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: data_dir.into(),
            database_url: None,
            nats_url: None,
            node_id: None,
            lease_ms: DEFAULT_LEASE_MS,
            public_url: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            board_idle_secs: DEFAULT_BOARD_IDLE_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_peers_per_board: DEFAULT_MAX_PEERS_PER_BOARD,
            max_messages_per_second: DEFAULT_MAX_MESSAGES_PER_SECOND,
            max_bytes_per_second: DEFAULT_MAX_BYTES_PER_SECOND,
            max_viewers_per_board: DEFAULT_MAX_VIEWERS_PER_BOARD,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            max_board_bytes: DEFAULT_MAX_BOARD_BYTES,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            board_creations_per_minute: DEFAULT_BOARD_CREATIONS_PER_MINUTE,
            joins_per_minute: DEFAULT_JOINS_PER_MINUTE,
            client_ip_header: None,
            http_timeout_secs: DEFAULT_HTTP_TIMEOUT_SECS,
            ping_interval_secs: DEFAULT_PING_INTERVAL_SECS,
            board_retention_days: None,
            max_participants_per_board: DEFAULT_MAX_PARTICIPANTS_PER_BOARD,
            roti_min_raters: DEFAULT_ROTI_MIN_RATERS,
            max_team_retros: DEFAULT_MAX_TEAM_RETROS,
            max_team_actions: DEFAULT_MAX_TEAM_ACTIONS,
            log_format: LogFormat::Text,
        }
    }

    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.lease_ms.max(500))
    }

    pub fn board_idle(&self) -> Duration {
        Duration::from_secs(self.board_idle_secs)
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.ping_interval_secs.max(1))
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.http_timeout_secs.max(1))
    }

    /// How long a board may go without a change before it is deleted, if retention is on.
    pub fn board_retention(&self) -> Option<Duration> {
        self.board_retention_days
            .filter(|d| *d > 0.0)
            .and_then(|days| Duration::try_from_secs_f64(days * 86_400.0).ok())
    }
}

/// A URL that may hold a password (Postgres's, NATS's). Its `Debug` shows nothing of it: the
/// configuration may be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, for the one place that connects; an error (which does not repeat the URL)
    /// if it does not start with one of `schemes`.
    pub fn expose(&self, schemes: &[&str]) -> Result<&str, String> {
        if schemes.iter().any(|scheme| self.0.starts_with(&format!("{scheme}://"))) {
            Ok(&self.0)
        } else {
            Err(format!("the URL must start with {}://", schemes.join(":// or ")))
        }
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

/// Takes any text: a refusal here would be printed with the value, password and all, so the
/// URL is checked where it is used ([`SecretUrl::expose`]).
impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_owned()))
    }
}
