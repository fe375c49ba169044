//! Durable storage of boards in SQLite: board records, document snapshots and incremental changes.
//!
//! One writer thread owns the database connection. Requests reach it over a channel and every
//! write that is waiting when it wakes up goes into one transaction (group commit), so a busy
//! server pays one `fsync` for many boards. A call to [`Store::append_many`] returns only after its
//! transaction committed: the caller may then tell peers the changes are accepted.
//!
//! Each document is a snapshot (`Automerge::save`) plus the changes accepted since, one row per
//! change keyed by its hash. When a document has gathered [`COMPACT_AFTER`] changes, and they
//! take at least half as many bytes as its snapshot (so a large board is not reloaded every few
//! hundred small changes), a separate
//! compactor thread loads snapshot and changes, saves one new snapshot, and the writer swaps it
//! in and deletes exactly the changes it contains, in one transaction. A crash at any point
//! leaves either the old rows or the new ones, and loading both would merge to the same document.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::thread;

use hindsight_shared::ids::DocumentId;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use crate::key::KeyHash;

/// A document is compacted into a new snapshot once this many changes are stored beside it (and
/// they take at least half the snapshot's bytes).
pub const COMPACT_AFTER: usize = 256;

/// What this run knows of a document's rows: the changes beside its snapshot, and their bytes.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    changes: usize,
    bytes: usize,
    snapshot_bytes: usize,
}

impl Pending {
    fn due(&self) -> bool {
        self.changes >= COMPACT_AFTER && self.bytes >= self.snapshot_bytes / 2
    }
}

/// A stored document: its latest snapshot and the changes accepted after it.
#[derive(Debug, Default)]
pub struct StoredDoc {
    pub snapshot: Vec<u8>,
    pub changes: Vec<Vec<u8>>,
}

/// One accepted change, as Automerge encodes it.
#[derive(Debug, Clone)]
pub struct StoredChange {
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
}

/// What the server knows about a board (or a team) outside its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRecord {
    pub id: DocumentId,
    pub created_at_ms: i64,
    /// SHA-256 of the facilitator key (of a team: the team key); the key itself is never stored.
    pub facilitator_key_hash: KeyHash,
    pub kind: DocKind,
    /// The team a board belongs to. Kept here, not in the board's document, which every
    /// participant receives: a team id is the team's capability.
    pub team: Option<DocumentId>,
}

/// What a stored top-level document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A retro's board (with its participants' desks).
    Board,
    /// A team's ledger.
    Team,
}

impl DocKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Board => "board",
            Self::Team => "team",
        }
    }
}

/// Someone who joined a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub board: DocumentId,
    /// Public id, shown in presence.
    pub id: String,
    pub name: String,
    /// Secret: the id of their desk document.
    pub desk: DocumentId,
    pub joined_at_ms: i64,
}

/// A board as stored: its record, its document, and each participant with the size of their
/// desk in storage (desks themselves are loaded when they are needed).
#[derive(Debug)]
pub struct StoredBoard {
    pub record: BoardRecord,
    pub doc: StoredDoc,
    pub participants: Vec<(ParticipantRecord, usize)>,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not create the data directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("could not start the {name} thread: {source}")]
    Thread { name: &'static str, source: std::io::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the transaction did not commit: {0}")]
    Commit(String),
    #[error("the storage thread has stopped")]
    Stopped,
    #[error("this board is full: it takes at most {0} participants")]
    BoardFull(usize),
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    CreateBoard {
        record: BoardRecord,
        snapshot: Vec<u8>,
        reply: Reply<()>,
    },
    Board {
        id: DocumentId,
        reply: Reply<Option<BoardRecord>>,
    },
    CreateParticipant {
        record: ParticipantRecord,
        desk: Vec<u8>,
        /// The most participants the board may have, this one included.
        max: usize,
        reply: Reply<()>,
    },
    Load {
        doc: DocumentId,
        reply: Reply<Option<StoredDoc>>,
    },
    LoadMany {
        docs: Vec<DocumentId>,
        reply: Reply<Vec<(DocumentId, StoredDoc)>>,
    },
    LoadBoard {
        board: DocumentId,
        reply: Reply<Option<StoredBoard>>,
    },
    DeskOwner {
        desk: DocumentId,
        reply: Reply<Option<DocumentId>>,
    },
    Append {
        /// The board the documents belong to: its last activity is now.
        board: DocumentId,
        at_ms: i64,
        docs: Vec<(DocumentId, Vec<StoredChange>)>,
        reply: Reply<()>,
    },
    /// Deletes boards (with their participants and every document) idle since before `before_ms`,
    /// except those in `keep`; answers with how many went.
    Expire {
        before_ms: i64,
        keep: Vec<DocumentId>,
        reply: Reply<usize>,
    },
    /// Deletes one board or team, its participants and every document of theirs.
    Delete {
        id: DocumentId,
        reply: Reply<usize>,
    },
    /// The compactor's answer: a new snapshot and the changes it contains, or `None` on failure.
    Compacted {
        doc: DocumentId,
        result: Option<Compacted>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle to the storage thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    requests: mpsc::UnboundedSender<Request>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the database in `data_dir` and starts the writer and compactor threads.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::CreateDir { path: data_dir.display().to_string(), source })?;
        let conn = open_connection(&data_dir.join("hindsight.sqlite3"))?;
        // Unbounded on purpose: every request but the compactor's is a caller awaiting its answer
        // (so at most one per task, and tasks are bounded), and the compactor sends one result
        // per job, of which the writer gives it at most one per document at a time. A bound
        // would bound nothing more, and would make the compactor wait on the writer it feeds.
        let (requests, inbox) = mpsc::unbounded_channel();
        let (compact_tx, compact_rx) = std::sync::mpsc::channel();
        let results = requests.clone();
        thread::Builder::new()
            .name("hindsight-compactor".into())
            .spawn(move || compactor(compact_rx, results))
            .map_err(|source| StoreError::Thread { name: "compactor", source })?;
        let writer = Writer { conn, compact: compact_tx, pending: HashMap::new(), compacting: HashSet::new() };
        thread::Builder::new()
            .name("hindsight-store".into())
            .spawn(move || writer.run(inbox))
            .map_err(|source| StoreError::Thread { name: "storage", source })?;
        Ok(Self { requests })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(make(reply)).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores a new board with its first snapshot. Durable when it returns.
    pub async fn create_board(&self, record: BoardRecord, snapshot: Vec<u8>) -> Result<(), StoreError> {
        self.call(|reply| Request::CreateBoard { record, snapshot, reply }).await
    }

    /// The board's record, if the board exists.
    pub async fn board(&self, id: DocumentId) -> Result<Option<BoardRecord>, StoreError> {
        self.call(|reply| Request::Board { id, reply }).await
    }

    /// Stores a participant and their new desk. Durable when it returns.
    /// Fails with [`StoreError::BoardFull`] if the board has `max` participants already.
    pub async fn create_participant(
        &self,
        record: ParticipantRecord,
        desk: Vec<u8>,
        max: usize,
    ) -> Result<(), StoreError> {
        self.call(|reply| Request::CreateParticipant { record, desk, max, reply }).await
    }

    /// Everything stored for a document, or `None` if it was never stored.
    pub async fn load(&self, doc: DocumentId) -> Result<Option<StoredDoc>, StoreError> {
        self.call(|reply| Request::Load { doc, reply }).await
    }

    /// A board's document with every participant and the size of their desk, or `None` if there
    /// is no such board.
    pub async fn load_board(&self, board: DocumentId) -> Result<Option<StoredBoard>, StoreError> {
        self.call(|reply| Request::LoadBoard { board, reply }).await
    }

    /// Several documents at once; those never stored are left out.
    pub async fn load_many(&self, docs: Vec<DocumentId>) -> Result<Vec<(DocumentId, StoredDoc)>, StoreError> {
        self.call(|reply| Request::LoadMany { docs, reply }).await
    }

    /// Deletes every board idle (no change stored, no participant joined) since before
    /// `before_ms`, except the boards in `keep`, with all their documents. Returns how many went.
    pub async fn expire(&self, before_ms: i64, keep: Vec<DocumentId>) -> Result<usize, StoreError> {
        self.call(|reply| Request::Expire { before_ms, keep, reply }).await
    }

    /// Deletes a board or a team with every document of theirs. Durable when it returns.
    pub async fn delete(&self, id: DocumentId) -> Result<(), StoreError> {
        self.call(|reply| Request::Delete { id, reply }).await.map(drop)
    }

    /// The board a desk belongs to, if `desk` is a desk.
    pub async fn desk_owner(&self, desk: DocumentId) -> Result<Option<DocumentId>, StoreError> {
        self.call(|reply| Request::DeskOwner { desk, reply }).await
    }

    /// Stores accepted changes of documents of one board (the board and its desks) in one
    /// transaction. Durable (committed and synced to disk) when it returns.
    pub async fn append_many(
        &self,
        board: DocumentId,
        docs: Vec<(DocumentId, Vec<StoredChange>)>,
    ) -> Result<(), StoreError> {
        if docs.iter().all(|(_, changes)| changes.is_empty()) {
            return Ok(());
        }
        let at_ms = crate::clock::now_ms();
        self.call(|reply| Request::Append { board, at_ms, docs, reply }).await
    }

    /// Finishes every request already queued, checkpoints the write-ahead log and stops the thread.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown { reply }).is_ok() {
            let _ = done.await;
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
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
    let has_updated_at: bool =
        conn.query_row("SELECT COUNT(*) FROM pragma_table_info('boards') WHERE name = 'updated_at_ms'", [], |row| {
            row.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !has_updated_at {
        conn.execute_batch(
            "ALTER TABLE boards ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;
             UPDATE boards SET updated_at_ms = created_at_ms;",
        )?;
    }
    // Added with teams: a row is a board or a team's ledger.
    let has_kind: bool =
        conn.query_row("SELECT COUNT(*) FROM pragma_table_info('boards') WHERE name = 'kind'", [], |row| {
            row.get::<_, i64>(0).map(|n| n > 0)
        })?;
    if !has_kind {
        conn.execute_batch(
            "ALTER TABLE boards ADD COLUMN kind TEXT NOT NULL DEFAULT 'board';
             ALTER TABLE boards ADD COLUMN team BLOB;",
        )?;
    }
    Ok(conn)
}

/// The state of the writer thread.
struct Writer {
    conn: Connection,
    compact: std::sync::mpsc::Sender<(DocumentId, CompactionJob)>,
    /// What each document has stored beside its snapshot, as far as this run knows.
    pending: HashMap<DocumentId, Pending>,
    /// Documents whose compaction is under way.
    compacting: HashSet<DocumentId>,
}

impl Writer {
    fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match inbox.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if let Some(reply) = self.handle(batch) {
                self.compact_before_exit();
                if let Err(e) = self.conn.pragma_update(None, "wal_checkpoint", "TRUNCATE") {
                    tracing::warn!(error = %e, "could not checkpoint the write-ahead log at shutdown");
                }
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Handles one batch: all writes in one transaction, then the reads. Returns the shutdown
    /// reply if the batch asked to stop.
    fn handle(&mut self, batch: Vec<Request>) -> Option<oneshot::Sender<()>> {
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut shutdown = None;
        for request in batch {
            match request {
                Request::Board { .. }
                | Request::Load { .. }
                | Request::LoadMany { .. }
                | Request::LoadBoard { .. }
                | Request::DeskOwner { .. } => reads.push(request),
                Request::Shutdown { reply } => shutdown = Some(reply),
                write => writes.push(write),
            }
        }
        if !writes.is_empty() {
            self.write(writes);
        }
        for read in reads {
            match read {
                Request::Board { id, reply } => {
                    let _ = reply.send(self.read_board(id));
                }
                Request::Load { doc, reply } => {
                    let result = self.read_doc(doc);
                    let _ = reply.send(result);
                }
                Request::LoadMany { docs, reply } => {
                    let loaded = docs
                        .into_iter()
                        .filter_map(|doc| self.read_doc(doc).map(|stored| stored.map(|s| (doc, s))).transpose())
                        .collect();
                    let _ = reply.send(loaded);
                }
                Request::LoadBoard { board, reply } => {
                    let _ = reply.send(self.read_board_with_desks(board));
                }
                Request::DeskOwner { desk, reply } => {
                    let owner = self
                        .conn
                        .query_row("SELECT board FROM participants WHERE desk = ?1", params![desk.as_bytes()], |row| {
                            row.get::<_, Vec<u8>>(0)
                        })
                        .optional()
                        .map(|owner| owner.and_then(|bytes| DocumentId::try_from(bytes.as_slice()).ok()))
                        .map_err(StoreError::from);
                    let _ = reply.send(owner);
                }
                _ => {}
            }
        }
        shutdown
    }

    fn write(&mut self, writes: Vec<Request>) {
        let mut done: Vec<(Request, Result<(), StoreError>)> = Vec::with_capacity(writes.len());
        // How many boards an `Expire` in this batch deleted (at most one waits per batch).
        let mut expired = 0;
        let committed = (|| -> Result<(), rusqlite::Error> {
            let mut tx = self.conn.transaction()?;
            for write in writes {
                // A savepoint per request: one failing write does not fail its neighbours.
                let result = (|| -> Result<(), StoreError> {
                    let sp = tx.savepoint()?;
                    expired += apply_write(&sp, &write)?;
                    Ok(sp.commit()?)
                })();
                done.push((write, result));
            }
            tx.commit()
        })();
        let commit_error = committed.err().map(|e| e.to_string());
        for (write, result) in done {
            let result = match (&commit_error, result) {
                (Some(e), _) => Err(StoreError::Commit(e.clone())),
                (None, result) => result,
            };
            match write {
                Request::CreateBoard { reply, .. } | Request::CreateParticipant { reply, .. } => {
                    let _ = reply.send(result);
                }
                Request::Expire { reply, .. } | Request::Delete { reply, .. } => {
                    let _ = reply.send(result.map(|()| std::mem::take(&mut expired)));
                }
                Request::Append { docs, reply, .. } => {
                    if result.is_ok() {
                        for (doc, changes) in &docs {
                            let pending = self.pending.entry(*doc).or_default();
                            pending.changes += changes.len();
                            pending.bytes += changes.iter().map(|c| c.bytes.len()).sum::<usize>();
                            self.maybe_compact(*doc);
                        }
                    }
                    let _ = reply.send(result);
                }
                Request::Compacted { doc, result: compacted } => {
                    self.compacting.remove(&doc);
                    if let (Ok(()), Some((snapshot, hashes, bytes))) = (result, compacted) {
                        let pending = self.pending.entry(doc).or_default();
                        pending.changes = pending.changes.saturating_sub(hashes.len());
                        pending.bytes = pending.bytes.saturating_sub(bytes);
                        pending.snapshot_bytes = snapshot.len();
                    }
                }
                _ => {}
            }
        }
    }

    /// At shutdown, compacts every document this run stored changes for, so that the next start
    /// loads one snapshot per document instead of replaying its changes. Inline: nothing else is
    /// waiting for the writer any more.
    fn compact_before_exit(&mut self) {
        let docs: Vec<DocumentId> = self
            .pending
            .iter()
            .filter(|(doc, pending)| pending.changes > 0 && !self.compacting.contains(*doc))
            .map(|(doc, _)| *doc)
            .collect();
        let mut writes = Vec::new();
        for doc in docs {
            match read_doc_with_hashes(&self.conn, doc) {
                Ok(Some(job)) => writes.push(Request::Compacted { doc, result: compact(doc, &job) }),
                Ok(None) => {}
                Err(e) => tracing::warn!(doc = %doc.tag(), error = %e, "could not read a document for compaction"),
            }
        }
        if !writes.is_empty() {
            tracing::info!(documents = writes.len(), "compacted documents before exit");
            self.write(writes);
        }
    }

    /// Hands a document to the compactor once enough changes piled up beside its snapshot.
    fn maybe_compact(&mut self, doc: DocumentId) {
        if !self.pending.get(&doc).is_some_and(Pending::due) || self.compacting.contains(&doc) {
            return;
        }
        match read_doc_with_hashes(&self.conn, doc) {
            Ok(Some(job)) => {
                self.compacting.insert(doc);
                let _ = self.compact.send((doc, job));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(doc = %doc.tag(), error = %e, "could not read a document for compaction"),
        }
    }

    fn read_board(&self, id: DocumentId) -> Result<Option<BoardRecord>, StoreError> {
        let record = self
            .conn
            .query_row(
                "SELECT created_at_ms, facilitator_key_hash, kind, team FROM boards WHERE id = ?1",
                params![id.as_bytes()],
                |row| {
                    let created_at_ms: i64 = row.get(0)?;
                    let hash: Vec<u8> = row.get(1)?;
                    let kind: String = row.get(2)?;
                    let team: Option<Vec<u8>> = row.get(3)?;
                    Ok((created_at_ms, hash, kind, team))
                },
            )
            .optional()?;
        Ok(record.and_then(|(created_at_ms, hash, kind, team)| {
            let kind = if kind == DocKind::Team.as_str() { DocKind::Team } else { DocKind::Board };
            let team = team.and_then(|t| DocumentId::try_from(t.as_slice()).ok());
            Some(BoardRecord { id, created_at_ms, facilitator_key_hash: KeyHash(hash.try_into().ok()?), kind, team })
        }))
    }

    /// Reads a document, and remembers how many changes sit beside its snapshot.
    fn read_doc(&mut self, doc: DocumentId) -> Result<Option<StoredDoc>, StoreError> {
        let stored = read_doc_with_hashes(&self.conn, doc)?.map(|job| StoredDoc {
            snapshot: job.snapshot,
            changes: job.changes.into_iter().map(|(_, bytes)| bytes).collect(),
        });
        if let Some(stored) = &stored {
            let bytes = stored.changes.iter().map(Vec::len).sum();
            self.pending
                .insert(doc, Pending { changes: stored.changes.len(), bytes, snapshot_bytes: stored.snapshot.len() });
        }
        Ok(stored)
    }

    fn read_board_with_desks(&mut self, board: DocumentId) -> Result<Option<StoredBoard>, StoreError> {
        let Some(record) = self.read_board(board)? else {
            return Ok(None);
        };
        let Some(doc) = self.read_doc(board)? else {
            return Ok(None);
        };
        // Each participant with the size of their desk: its snapshot and its changes.
        let mut statement = self.conn.prepare_cached(
            "SELECT p.id, p.desk, p.name, p.joined_at_ms,
                    COALESCE((SELECT length(data) FROM snapshots WHERE doc = p.desk), 0)
                    + COALESCE((SELECT SUM(length(data)) FROM changes WHERE doc = p.desk), 0)
             FROM participants p WHERE p.board = ?1 ORDER BY p.joined_at_ms, p.id",
        )?;
        let records = statement
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
        drop(statement);
        let participants = records
            .into_iter()
            .filter_map(|(id, desk, name, joined_at_ms, bytes)| {
                let desk = DocumentId::try_from(desk.as_slice()).ok()?;
                let record = ParticipantRecord { board, id, name, desk, joined_at_ms };
                Some((record, usize::try_from(bytes).unwrap_or(0)))
            })
            .collect();
        Ok(Some(StoredBoard { record, doc, participants }))
    }
}

/// Applies one write; returns how many boards it deleted (for `Expire`).
fn apply_write(conn: &Connection, write: &Request) -> Result<usize, StoreError> {
    match write {
        Request::CreateBoard { record, snapshot, .. } => {
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
        Request::CreateParticipant { record, desk, max, .. } => {
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
        Request::Append { board, at_ms, docs, .. } => {
            let mut insert =
                conn.prepare_cached("INSERT OR IGNORE INTO changes (doc, hash, data) VALUES (?1, ?2, ?3)")?;
            for (doc, changes) in docs {
                for change in changes {
                    insert.execute(params![doc.as_bytes(), change.hash, change.bytes])?;
                }
            }
            conn.prepare_cached("UPDATE boards SET updated_at_ms = MAX(updated_at_ms, ?2) WHERE id = ?1")?
                .execute(params![board.as_bytes(), at_ms])?;
        }
        Request::Expire { before_ms, keep, .. } => return expire(conn, *before_ms, keep),
        Request::Delete { id, .. } => {
            // Not counted with what an `Expire` of the same batch deleted.
            delete(conn, id.as_bytes())?;
        }
        Request::Compacted { doc, result: Some((snapshot, hashes, _)) } => {
            // Every document has a snapshot row from its creation; one that is gone was deleted
            // (an expired board) while it was being compacted, and stays gone.
            conn.execute("UPDATE snapshots SET data = ?2 WHERE doc = ?1", params![doc.as_bytes(), snapshot])?;
            let mut delete = conn.prepare_cached("DELETE FROM changes WHERE doc = ?1 AND hash = ?2")?;
            for hash in hashes {
                delete.execute(params![doc.as_bytes(), hash])?;
            }
        }
        _ => {}
    }
    Ok(0)
}

/// Deletes the boards idle since before `before_ms` (but those in `keep`), their participants,
/// and every document of theirs.
fn expire(conn: &Connection, before_ms: i64, keep: &[DocumentId]) -> Result<usize, StoreError> {
    let mut statement = conn.prepare_cached("SELECT id FROM boards WHERE updated_at_ms < ?1")?;
    let idle: Vec<Vec<u8>> = statement.query_map(params![before_ms], |row| row.get(0))?.collect::<Result<_, _>>()?;
    let mut deleted = 0;
    for board in idle {
        if keep.iter().any(|k| k.as_bytes().as_slice() == board.as_slice()) {
            continue;
        }
        delete(conn, &board)?;
        deleted += 1;
    }
    Ok(deleted)
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

/// A compaction's result: the new snapshot, the hashes of the changes it holds (the rows it
/// replaces), and their bytes.
type Compacted = (Vec<u8>, Vec<[u8; 32]>, usize);

/// A document as stored, with the hash of every change: what the compactor works on.
struct CompactionJob {
    snapshot: Vec<u8>,
    changes: Vec<([u8; 32], Vec<u8>)>,
}

fn read_doc_with_hashes(conn: &Connection, doc: DocumentId) -> Result<Option<CompactionJob>, StoreError> {
    let snapshot: Option<Vec<u8>> = conn
        .query_row("SELECT data FROM snapshots WHERE doc = ?1", params![doc.as_bytes()], |row| row.get(0))
        .optional()?;
    let mut statement = conn.prepare_cached("SELECT hash, data FROM changes WHERE doc = ?1")?;
    let changes = statement
        .query_map(params![doc.as_bytes()], |row| {
            let hash: Vec<u8> = row.get(0)?;
            let data: Vec<u8> = row.get(1)?;
            Ok((hash, data))
        })?
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

/// The compactor thread: turns a snapshot plus changes into one new snapshot, off the writer.
fn compactor(jobs: std::sync::mpsc::Receiver<(DocumentId, CompactionJob)>, results: mpsc::UnboundedSender<Request>) {
    while let Ok((doc, job)) = jobs.recv() {
        if results.send(Request::Compacted { doc, result: compact(doc, &job) }).is_err() {
            return;
        }
    }
}

/// One new snapshot holding a stored snapshot and the changes beside it, with the hashes of
/// those changes (the rows it replaces); `None` if the stored bytes do not load.
fn compact(doc: DocumentId, job: &CompactionJob) -> Option<Compacted> {
    let hashes: Vec<[u8; 32]> = job.changes.iter().map(|(hash, _)| *hash).collect();
    let compacted = (|| -> Result<Vec<u8>, automerge::AutomergeError> {
        let mut merged = if job.snapshot.is_empty() {
            automerge::Automerge::new()
        } else {
            automerge::Automerge::load(&job.snapshot)?
        };
        let changes: Vec<u8> = job.changes.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
        merged.load_incremental(&changes)?;
        Ok(merged.save())
    })();
    match compacted {
        Ok(snapshot) => Some((snapshot, hashes, job.changes.iter().map(|(_, bytes)| bytes.len()).sum())),
        Err(e) => {
            tracing::warn!(doc = %doc.tag(), error = %e, "could not compact a document; its changes stay as they are");
            None
        }
    }
}
