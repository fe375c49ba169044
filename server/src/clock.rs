//! The server's wall clock, read in one place: milliseconds since the Unix epoch.
//!
//! Wall-clock time goes into documents and records (a note's `created_at`, a board's
//! `created_at_ms`, when storage last saw a board); the board core never reads it, its actor
//! passes it in.

/// Milliseconds since the Unix epoch, by this server's clock (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
