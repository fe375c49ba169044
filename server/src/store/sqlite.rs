//! The SQLite backend: one file in the data directory, in WAL mode with `synchronous=FULL`, so a
//! committed transaction is on disk when it returns. The default store of the single binary.

use std::path::Path;

use hindsight_shared::ids::DocumentId;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Backend, BoardRecord, CompactionJob, ParticipantRecord, StoreError, Write, board_record, delete_idle};

/// The writer thread's connection.
pub(super) struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens (or creates) the database at `path` and brings its tables up to date.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // WAL with synchronous=FULL: a commit returns after the log is fsynced, so a committed
        // change survives a crash of the process or the machine.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS boards (
                 id BLOB PRIMARY KEY,
                 created_at_ms INTEGER NOT NULL,
                 facilitator_key_hash BLOB NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS participants (
                 board BLOB NOT NULL REFERENCES boards (id),
                 id TEXT NOT NULL,
                 desk BLOB NOT NULL UNIQUE,
                 name TEXT NOT NULL,
                 joined_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (board, id)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS snapshots (
                 doc BLOB PRIMARY KEY,
                 data BLOB NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS changes (
                 doc BLOB NOT NULL,
                 hash BLOB NOT NULL,
                 data BLOB NOT NULL,
                 PRIMARY KEY (doc, hash)
             ) WITHOUT ROWID;",
        )?;
        // Added after the first release: when a board last changed, for retention.
        if !has_column(&conn, "updated_at_ms")? {
            conn.execute_batch(
                "ALTER TABLE boards ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;
                 UPDATE boards SET updated_at_ms = created_at_ms;",
            )?;
        }
        // Added with teams: a row is a board or a team's ledger.
        if !has_column(&conn, "kind")? {
            conn.execute_batch(
                "ALTER TABLE boards ADD COLUMN kind TEXT NOT NULL DEFAULT 'board';
                 ALTER TABLE boards ADD COLUMN team BLOB;",
            )?;
        }
        Ok(Self { conn })
    }
}

fn has_column(conn: &Connection, column: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row("SELECT COUNT(*) FROM pragma_table_info('boards') WHERE name = ?1", params![column], |row| {
        row.get::<_, i64>(0).map(|n| n > 0)
    })
}

impl Backend for Sqlite {
    fn write(&mut self, writes: &[Write<'_>]) -> (Vec<Result<usize, StoreError>>, Option<String>) {
        let mut results = Vec::with_capacity(writes.len());
        let committed = (|| -> Result<(), rusqlite::Error> {
            let mut tx = self.conn.transaction()?;
            for write in writes {
                let result = (|| -> Result<usize, StoreError> {
                    let sp = tx.savepoint()?;
                    let deleted = apply(&sp, write)?;
                    sp.commit()?;
                    Ok(deleted)
                })();
                results.push(result);
            }
            tx.commit()
        })();
        (results, committed.err().map(|e| e.to_string()))
    }

    fn board(&mut self, id: DocumentId) -> Result<Option<BoardRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT created_at_ms, facilitator_key_hash, kind, team FROM boards WHERE id = ?1",
                params![id.as_bytes()],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                },
            )
            .optional()?;
        Ok(row.and_then(|(created_at_ms, hash, kind, team)| board_record(id, created_at_ms, hash, &kind, team)))
    }

    fn document(&mut self, doc: DocumentId) -> Result<Option<CompactionJob>, StoreError> {
        let snapshot: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT data FROM snapshots WHERE doc = ?1", params![doc.as_bytes()], |row| row.get(0))
            .optional()?;
        let mut statement = self.conn.prepare_cached("SELECT hash, data FROM changes WHERE doc = ?1")?;
        let changes = statement
            .query_map(params![doc.as_bytes()], |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)))?
            .filter_map(|row| match row {
                Ok((hash, data)) => Some(Ok((<[u8; 32]>::try_from(hash).ok()?, data))),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if snapshot.is_none() && changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(CompactionJob { snapshot: snapshot.unwrap_or_default(), changes }))
    }

    fn participants(&mut self, board: DocumentId) -> Result<Vec<(ParticipantRecord, usize)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT p.id, p.desk, p.name, p.joined_at_ms,
                    COALESCE((SELECT length(data) FROM snapshots WHERE doc = p.desk), 0)
                    + COALESCE((SELECT SUM(length(data)) FROM changes WHERE doc = p.desk), 0)
             FROM participants p WHERE p.board = ?1 ORDER BY p.joined_at_ms, p.id",
        )?;
        let rows = statement
            .query_map(params![board.as_bytes()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, desk, name, joined_at_ms, bytes)| {
                let desk = DocumentId::try_from(desk.as_slice()).ok()?;
                let record = ParticipantRecord { board, id, name, desk, joined_at_ms };
                Some((record, usize::try_from(bytes).unwrap_or(0)))
            })
            .collect())
    }

    fn desk_owner(&mut self, desk: DocumentId) -> Result<Option<DocumentId>, StoreError> {
        let owner = self
            .conn
            .query_row("SELECT board FROM participants WHERE desk = ?1", params![desk.as_bytes()], |row| {
                row.get::<_, Vec<u8>>(0)
            })
            .optional()?;
        Ok(owner.and_then(|bytes| DocumentId::try_from(bytes.as_slice()).ok()))
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.conn.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// Checkpoints the write-ahead log, so the next start opens one file.
    fn close(&mut self) {
        if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
            tracing::warn!(error = %e, "could not checkpoint the write-ahead log at shutdown");
        }
    }
}

/// Applies one write; returns how many boards it deleted.
fn apply(conn: &Connection, write: &Write<'_>) -> Result<usize, StoreError> {
    match write {
        Write::CreateBoard { record, snapshot } => {
            conn.execute(
                "INSERT INTO boards (id, created_at_ms, facilitator_key_hash, updated_at_ms, kind, team) \
                 VALUES (?1, ?2, ?3, ?2, ?4, ?5)",
                params![
                    record.id.as_bytes(),
                    record.created_at_ms,
                    record.facilitator_key_hash.0,
                    record.kind.as_str(),
                    record.team.as_ref().map(|t| t.as_bytes().to_vec())
                ],
            )?;
            conn.execute("INSERT INTO snapshots (doc, data) VALUES (?1, ?2)", params![record.id.as_bytes(), snapshot])?;
        }
        // Leases are cluster mode's, which runs on Postgres only.
        Write::CreateParticipant { fence: Some(_), .. }
        | Write::Append { fence: Some(_), .. }
        | Write::Delete { fence: Some(_), .. }
        | Write::Compacted { fence: Some(_), .. } => {
            return Err(StoreError::NeedsPostgres);
        }
        Write::CreateParticipant { record, desk, max, fence: None } => {
            // Counted in the same transaction as the insert: joins racing each other see each other.
            let count: i64 = conn.query_row(
                "SELECT COUNT(*) FROM participants WHERE board = ?1",
                params![record.board.as_bytes()],
                |row| row.get(0),
            )?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= *max {
                return Err(StoreError::BoardFull(*max));
            }
            conn.execute(
                "INSERT INTO participants (board, id, desk, name, joined_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![record.board.as_bytes(), record.id, record.desk.as_bytes(), record.name, record.joined_at_ms],
            )?;
            conn.execute("INSERT INTO snapshots (doc, data) VALUES (?1, ?2)", params![record.desk.as_bytes(), desk])?;
            conn.execute(
                "UPDATE boards SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1",
                params![record.board.as_bytes(), record.joined_at_ms],
            )?;
        }
        Write::Append { board, at_ms, docs, fence: None } => {
            let mut insert =
                conn.prepare_cached("INSERT OR IGNORE INTO changes (doc, hash, data) VALUES (?1, ?2, ?3)")?;
            for (doc, changes) in *docs {
                for change in changes {
                    insert.execute(params![doc.as_bytes(), change.hash, change.bytes])?;
                }
            }
            conn.prepare_cached("UPDATE boards SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1")?
                .execute(params![board.as_bytes(), at_ms])?;
        }
        Write::Expire { before_ms, keep } => {
            let mut statement = conn.prepare_cached("SELECT id FROM boards WHERE updated_at_ms < ?1")?;
            let idle: Vec<Vec<u8>> =
                statement.query_map(params![before_ms], |row| row.get(0))?.collect::<Result<_, _>>()?;
            return delete_idle(idle, keep, |board| delete(conn, board));
        }
        Write::Delete { id, fence: None } => {
            delete(conn, id.as_bytes())?;
            return Ok(1);
        }
        Write::Compacted { doc, snapshot, hashes, fence: None } => {
            conn.execute("UPDATE snapshots SET data = ?2 WHERE doc = ?1", params![doc.as_bytes(), snapshot])?;
            let mut delete = conn.prepare_cached("DELETE FROM changes WHERE doc = ?1 AND hash = ?2")?;
            for hash in *hashes {
                delete.execute(params![doc.as_bytes(), hash])?;
            }
        }
    }
    Ok(0)
}

/// Deletes one board (or team), its participants and every document of theirs.
fn delete(conn: &Connection, board: &[u8]) -> Result<(), StoreError> {
    for table in ["snapshots", "changes"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE doc = ?1 OR doc IN (SELECT desk FROM participants WHERE board = ?1)"),
            params![board],
        )?;
    }
    conn.execute("DELETE FROM participants WHERE board = ?1", params![board])?;
    conn.execute("DELETE FROM boards WHERE id = ?1", params![board])?;
    Ok(())
}
