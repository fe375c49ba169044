//! The server's configuration: command-line flags, each with an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Hindsight: real-time retrospective and postmortem boards.
#[derive(Debug, Clone, Parser)]
#[command(name = "hindsight", version, about)]
pub struct Config {
    /// The address to listen on.
    #[arg(long, env = "HINDSIGHT_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The directory that holds the board database. Created if missing.
    #[arg(long, env = "HINDSIGHT_DATA_DIR", default_value = "./hindsight-data")]
    pub data_dir: PathBuf,

    /// The URL browsers reach this server at, used in board links (for example
    /// `https://retro.example.com`). Defaults to `http://` plus the request's Host header.
    #[arg(long, env = "HINDSIGHT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The largest WebSocket message a client may send, in bytes.
    #[arg(long, env = "HINDSIGHT_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Seconds a board without peers stays in memory before it is evicted.
    #[arg(long, env = "HINDSIGHT_BOARD_IDLE_SECS", default_value_t = 60)]
    pub board_idle_secs: u64,

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
    /// A configuration with every default and the given data directory.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["hindsight"]);
        config.data_dir = data_dir.into();
        config
    }

    pub fn board_idle(&self) -> Duration {
        Duration::from_secs(self.board_idle_secs)
    }
}
