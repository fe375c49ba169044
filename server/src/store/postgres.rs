//! The Postgres backend (`--database-url`): the same tables as SQLite's, made by a migration at
//! start, written with the same batches. A transaction's commit returns once Postgres has it on
//! disk (`synchronous_commit` as the server sets it: on by default), which is when the writer
//! acknowledges. The blocking client runs on the store's writer thread.

use hindsight_shared::ids::DocumentId;
use postgres::{Client, GenericClient, NoTls};

use super::{
    Backend, BoardRecord, CompactionJob, Fence, Holder, LeaseAnswer, LeaseOp, ParticipantRecord, StoreError, Write,
    board_record, delete_idle,
};

/// The migrations, in order; `schema_version` says how many have run. Each runs in one
/// transaction under an advisory lock, so nodes starting together take turns.
const MIGRATIONS: [&str; 2] = [
    "CREATE TABLE boards (
         id BYTEA PRIMARY KEY,
         created_at_ms BIGINT NOT NULL,
         facilitator_key_hash BYTEA NOT NULL,
         updated_at_ms BIGINT NOT NULL,
         kind TEXT NOT NULL DEFAULT 'board',
         team BYTEA
     );
     CREATE INDEX boards_updated_at ON boards (updated_at_ms);
     CREATE TABLE participants (
         board BYTEA NOT NULL REFERENCES boards (id),
         id TEXT NOT NULL,
         desk BYTEA NOT NULL UNIQUE,
         name TEXT NOT NULL,
         joined_at_ms BIGINT NOT NULL,
         PRIMARY KEY (board, id)
     );
     CREATE TABLE snapshots (
         doc BYTEA PRIMARY KEY,
         data BYTEA NOT NULL
     );
     CREATE TABLE changes (
         doc BYTEA NOT NULL,
         hash BYTEA NOT NULL,
         data BYTEA NOT NULL,
         PRIMARY KEY (doc, hash)
     );",
    // Cluster mode: one row per board (or team) that a node owns or owned, see `lease.rs`.
    "CREATE TABLE leases (
         key BYTEA PRIMARY KEY,
         owner TEXT NOT NULL,
         epoch BIGINT NOT NULL,
         expires_at TIMESTAMPTZ NOT NULL
     );
     CREATE INDEX leases_owner ON leases (owner);",
];

/// A key for `pg_advisory_xact_lock`: Hindsight's migrations.
const MIGRATION_LOCK: i64 = 0x4869_6e64_7369_6768;
/// A key for the session lock every node holds on its database while it serves: a node that
/// runs alone holds it exclusively (without leases, two nodes on one database would each accept
/// changes the other did not check), the nodes of a cluster hold it shared, so a node started
/// without `--nats-url` on a cluster's database is refused, and a cluster node on a lone node's.
const NODE_LOCK: i64 = 0x4869_6e64_7369_6769;
/// How long a starting node waits for the lock: a node killed a moment ago holds it until
/// Postgres notices its connection is gone.
const NODE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The writer thread's connection, made again when it was lost (Postgres restarted, say): the
/// request that found it lost fails, and the next one reconnects.
pub(super) struct Postgres {
    url: String,
    sharing: Sharing,
    client: Client,
    /// When a lost connection was last tried again: at most one attempt a second, so a batch of
    /// many requests, or a database that is down, costs one attempt, not one per request.
    retried: Option<std::time::Instant>,
}

impl Postgres {
    /// Connects and runs the migrations this database lacks. Never logs `url`: it may hold a
    /// password.
    pub(super) fn connect(url: &str, sharing: Sharing) -> Result<Self, StoreError> {
        Ok(Self { url: url.to_owned(), sharing, client: open(url, sharing)?, retried: None })
    }

    /// The connection, made again if it was lost.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_closed() {
            if self.retried.is_some_and(|at| at.elapsed() < std::time::Duration::from_secs(1)) {
                return Err(StoreError::Lost);
            }
            self.retried = Some(std::time::Instant::now());
            tracing::warn!("the connection to Postgres was lost; connecting again");
            self.client = open(&self.url, self.sharing)?;
            tracing::info!("connected to Postgres again");
        }
        Ok(&mut self.client)
    }
}

/// How a node uses its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sharing {
    /// The only node: it holds the database's node lock.
    Alone,
    /// One node of a cluster: boards are guarded by their leases.
    Cluster,
}

/// A connection with the schema up to date and, for a node alone, its lock on the database.
fn open(url: &str, sharing: Sharing) -> Result<Client, StoreError> {
    let mut config: postgres::Config = url.parse()?;
    // A network that drops packets must not hold the writer for ever: bounded connects, and a
    // dead peer noticed within a minute rather than the system's two hours.
    config
        .connect_timeout(std::time::Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(30))
        .tcp_user_timeout(std::time::Duration::from_secs(60));
    let mut client = config.connect(NoTls)?;
    // Acknowledged means on disk, whatever the role's or the database's default says.
    client.batch_execute("SET synchronous_commit = on")?;
    if sharing == Sharing::Cluster {
        // A lease row locked by a node that stalled mid-write must not hold this node's writer
        // for ever: a lock waited for this long fails the statement (a locate tries again), and
        // a transaction left open this long by a paused node is ended by Postgres.
        client.batch_execute("SET lock_timeout = '500ms'; SET idle_in_transaction_session_timeout = '5s'")?;
    }
    take_node_lock(&mut client, sharing)?;
    migrate(&mut client)?;
    Ok(client)
}

/// This node's session lock on the database (see [`NODE_LOCK`]), taken before anything else,
/// migrations included: a node that is refused changes nothing.
fn take_node_lock(client: &mut Client, sharing: Sharing) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let take = match sharing {
        Sharing::Alone => "SELECT pg_try_advisory_lock($1)",
        Sharing::Cluster => "SELECT pg_try_advisory_lock_shared($1)",
    };
    loop {
        let locked: bool = client.query_one(take, &[&NODE_LOCK])?.get(0);
        if locked {
            return Ok(());
        }
        if started.elapsed() > NODE_LOCK_WAIT {
            return Err(StoreError::InUse);
        }
        // Polled: Postgres has no event for another session's lock going away but waiting
        // on the lock itself, which would wait for ever behind a live node.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Runs the migrations this database lacks.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let version: i32 = tx.query_opt("SELECT version FROM schema_version", &[])?.map_or(0, |row| row.get::<_, i32>(0));
    let done = usize::try_from(version).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(done) {
        tx.batch_execute(migration)?;
    }
    if done < MIGRATIONS.len() {
        let latest = MIGRATIONS.len() as i32;
        tx.execute("DELETE FROM schema_version", &[])?;
        tx.execute("INSERT INTO schema_version (version) VALUES ($1)", &[&latest])?;
        tracing::info!(from = version, to = latest, "migrated the Postgres schema");
    }
    tx.commit()?;
    Ok(())
}

impl Backend for Postgres {
    fn write(&mut self, writes: &[Write<'_>]) -> (Vec<Result<usize, StoreError>>, Option<String>) {
        let sharing = self.sharing;
        let client = match self.client() {
            Ok(client) => client,
            Err(e) => return (Vec::new(), Some(e.to_string())),
        };
        let mut results = Vec::with_capacity(writes.len());
        let committed = (|| -> Result<(), postgres::Error> {
            let mut tx = client.transaction()?;
            for write in writes {
                // In a cluster, a compaction without the lease its changes were stored under
                // (a document this node only read) is not this node's to do.
                if sharing == Sharing::Cluster && matches!(write, Write::Compacted { fence: None, .. }) {
                    results.push(Ok(0));
                    continue;
                }
                // A savepoint per write: one failing does not fail its neighbours. Dropping it
                // uncommitted rolls back to it.
                let result = (|| -> Result<usize, StoreError> {
                    let mut sp = tx.savepoint("write")?;
                    let deleted = apply(&mut sp, write)?;
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
        let row = self.client()?.query_opt(
            "SELECT created_at_ms, facilitator_key_hash, kind, team FROM boards WHERE id = $1",
            &[&id.as_bytes().as_slice()],
        )?;
        Ok(row.and_then(|row| {
            board_record(id, row.get(0), row.get(1), row.get::<_, &str>(2), row.get::<_, Option<Vec<u8>>>(3))
        }))
    }

    fn document(&mut self, doc: DocumentId) -> Result<Option<CompactionJob>, StoreError> {
        let key = doc.as_bytes().as_slice();
        let snapshot: Option<Vec<u8>> =
            self.client()?.query_opt("SELECT data FROM snapshots WHERE doc = $1", &[&key])?.map(|row| row.get(0));
        let changes: Vec<([u8; 32], Vec<u8>)> = self
            .client
            .query("SELECT hash, data FROM changes WHERE doc = $1", &[&key])?
            .into_iter()
            .filter_map(|row| Some((<[u8; 32]>::try_from(row.get::<_, Vec<u8>>(0)).ok()?, row.get(1))))
            .collect();
        if snapshot.is_none() && changes.is_empty() {
            return Ok(None);
        }
        Ok(Some(CompactionJob { snapshot: snapshot.unwrap_or_default(), changes }))
    }

    fn participants(&mut self, board: DocumentId) -> Result<Vec<(ParticipantRecord, usize)>, StoreError> {
        let rows = self.client()?.query(
            "SELECT p.id, p.desk, p.name, p.joined_at_ms,
                    COALESCE((SELECT octet_length(data) FROM snapshots WHERE doc = p.desk), 0)::BIGINT
                    + COALESCE((SELECT SUM(octet_length(data)) FROM changes WHERE doc = p.desk), 0)::BIGINT
             FROM participants p WHERE p.board = $1 ORDER BY p.joined_at_ms, p.id",
            &[&board.as_bytes().as_slice()],
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let desk = DocumentId::try_from(row.get::<_, &[u8]>(1)).ok()?;
                let record =
                    ParticipantRecord { board, id: row.get(0), name: row.get(2), desk, joined_at_ms: row.get(3) };
                Some((record, usize::try_from(row.get::<_, i64>(4)).unwrap_or(0)))
            })
            .collect())
    }

    fn desk_owner(&mut self, desk: DocumentId) -> Result<Option<DocumentId>, StoreError> {
        let row = self
            .client()?
            .query_opt("SELECT board FROM participants WHERE desk = $1", &[&desk.as_bytes().as_slice()])?;
        Ok(row.and_then(|row| DocumentId::try_from(row.get::<_, &[u8]>(0)).ok()))
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        self.client()?.simple_query("SELECT 1")?;
        Ok(())
    }

    fn lease(&mut self, op: &LeaseOp) -> Result<LeaseAnswer, StoreError> {
        let client = self.client()?;
        let millis = |ttl: &std::time::Duration| ttl.as_secs_f64() * 1000.0;
        let holders = |rows: Vec<postgres::Row>| {
            rows.into_iter()
                .filter_map(|row| {
                    let key = DocumentId::try_from(row.get::<_, &[u8]>(0)).ok()?;
                    Some(Holder { key, node: row.get(1), epoch: row.get(2), live: row.get(3) })
                })
                .collect()
        };
        Ok(match op {
            LeaseOp::Take { key, node, ttl } => {
                let key = key.as_bytes().as_slice();
                // Taken if there is no row or it expired by the database's clock (a new epoch),
                // or extended if it is ours and live (the same epoch: two of our own tasks
                // locating the board at once must not fence each other). Otherwise the row stays.
                client.execute(
                    "INSERT INTO leases (key, owner, epoch, expires_at)
                     VALUES ($1, $2, 1, now() + $3::float8 * interval '1 millisecond')
                     ON CONFLICT (key) DO UPDATE
                         SET owner = EXCLUDED.owner,
                             epoch = CASE WHEN leases.owner = EXCLUDED.owner AND leases.expires_at > now()
                                          THEN leases.epoch ELSE leases.epoch + 1 END,
                             expires_at = EXCLUDED.expires_at
                         WHERE leases.expires_at <= now() OR leases.owner = EXCLUDED.owner",
                    &[&key, node, &millis(ttl)],
                )?;
                let rows = client
                    .query("SELECT key, owner, epoch, expires_at > now() FROM leases WHERE key = $1", &[&key])?;
                LeaseAnswer::Holders(holders(rows))
            }
            LeaseOp::Renew { node, ttl, held } => {
                let keys: Vec<&[u8]> = held.iter().map(|(key, _)| key.as_bytes().as_slice()).collect();
                let epochs: Vec<i64> = held.iter().map(|(_, epoch)| *epoch).collect();
                let rows = client.query(
                    "UPDATE leases SET expires_at = now() + $2::float8 * interval '1 millisecond'
                     FROM unnest($3::bytea[], $4::int8[]) AS held (key, epoch)
                     WHERE leases.key = held.key AND leases.epoch = held.epoch
                       AND leases.owner = $1 AND leases.expires_at > now()
                     RETURNING leases.key, leases.owner, leases.epoch, true",
                    &[node, &millis(ttl), &keys, &epochs],
                )?;
                LeaseAnswer::Holders(holders(rows))
            }
            LeaseOp::Holders { keys } => {
                let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes().as_slice()).collect();
                let rows = client
                    .query("SELECT key, owner, epoch, expires_at > now() FROM leases WHERE key = ANY($1)", &[&keys])?;
                LeaseAnswer::Holders(holders(rows))
            }
            LeaseOp::Release { node, key: Some((key, epoch)) } => LeaseAnswer::Released(client.execute(
                "UPDATE leases SET expires_at = now() WHERE key = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()",
                &[&key.as_bytes().as_slice(), node, epoch],
            )?),
            LeaseOp::Release { node, key: None } => LeaseAnswer::Released(
                client.execute("UPDATE leases SET expires_at = now() WHERE owner = $1 AND expires_at > now()", &[node])?,
            ),
        })
    }

    /// Lets go of the database at once, for the node that starts next.
    fn close(&mut self) {
        let unlock = match self.sharing {
            Sharing::Alone => "SELECT pg_advisory_unlock($1)",
            Sharing::Cluster => "SELECT pg_advisory_unlock_shared($1)",
        };
        if let Err(e) = self.client.execute(unlock, &[&NODE_LOCK]) {
            tracing::warn!(error = %e, "could not let go of the database's node lock");
        }
    }
}

/// Applies one write; returns how many boards it deleted.
fn apply(db: &mut impl GenericClient, write: &Write<'_>) -> Result<usize, StoreError> {
    match write {
        Write::CreateBoard { record, snapshot } => {
            let team = record.team.as_ref().map(|t| t.as_bytes().to_vec());
            db.execute(
                "INSERT INTO boards (id, created_at_ms, facilitator_key_hash, updated_at_ms, kind, team) \
                 VALUES ($1, $2, $3, $2, $4, $5)",
                &[
                    &record.id.as_bytes().as_slice(),
                    &record.created_at_ms,
                    &record.facilitator_key_hash.0.as_slice(),
                    &record.kind.as_str(),
                    &team,
                ],
            )?;
            db.execute(
                "INSERT INTO snapshots (doc, data) VALUES ($1, $2)",
                &[&record.id.as_bytes().as_slice(), snapshot],
            )?;
        }
        Write::CreateParticipant { record, desk, max, fence } => {
            check(db, *fence)?;
            let board = record.board.as_bytes().as_slice();
            // The board's row is locked first, so that joins racing each other through other
            // nodes count each other: the count and the insert are one step for everyone.
            db.execute("SELECT 1 FROM boards WHERE id = $1 FOR UPDATE", &[&board])?;
            let count: i64 = db.query_one("SELECT COUNT(*) FROM participants WHERE board = $1", &[&board])?.get(0);
            if usize::try_from(count).unwrap_or(usize::MAX) >= *max {
                return Err(StoreError::BoardFull(*max));
            }
            db.execute(
                "INSERT INTO participants (board, id, desk, name, joined_at_ms) VALUES ($1, $2, $3, $4, $5)",
                &[&board, &record.id, &record.desk.as_bytes().as_slice(), &record.name, &record.joined_at_ms],
            )?;
            db.execute(
                "INSERT INTO snapshots (doc, data) VALUES ($1, $2)",
                &[&record.desk.as_bytes().as_slice(), desk],
            )?;
            db.execute(
                "UPDATE boards SET updated_at_ms = GREATEST(updated_at_ms, $2) WHERE id = $1",
                &[&board, &record.joined_at_ms],
            )?;
        }
        Write::Append { board, at_ms, docs, fence } => {
            check(db, *fence)?;
            let insert =
                db.prepare("INSERT INTO changes (doc, hash, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")?;
            for (doc, changes) in *docs {
                for change in changes {
                    db.execute(&insert, &[&doc.as_bytes().as_slice(), &change.hash.as_slice(), &change.bytes])?;
                }
            }
            db.execute(
                "UPDATE boards SET updated_at_ms = GREATEST(updated_at_ms, $2) WHERE id = $1",
                &[&board.as_bytes().as_slice(), at_ms],
            )?;
        }
        Write::Expire { before_ms, keep } => {
            let idle: Vec<Vec<u8>> = db
                // A board whose lease is live is in some node's memory (cluster mode).
                .query(
                    "SELECT id FROM boards WHERE updated_at_ms < $1 AND NOT EXISTS (
                         SELECT 1 FROM leases WHERE (key = boards.id OR key = boards.team) AND expires_at > now())",
                    &[before_ms],
                )?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            return delete_idle(idle, keep, |board| delete(db, board));
        }
        Write::Delete { id, fence } => {
            check(db, *fence)?;
            delete(db, id.as_bytes())?;
            return Ok(1);
        }
        Write::Compacted { doc, snapshot, hashes, fence } => {
            check(db, *fence)?;
            let key = doc.as_bytes().as_slice();
            db.execute("UPDATE snapshots SET data = $2 WHERE doc = $1", &[&key, snapshot])?;
            let delete = db.prepare("DELETE FROM changes WHERE doc = $1 AND hash = $2")?;
            for hash in *hashes {
                db.execute(&delete, &[&key, &hash.as_slice()])?;
            }
        }
    }
    Ok(0)
}

/// Checks a write's fencing token against its lease, in the write's transaction: the row is
/// locked (shared) until the commit, so a node taking the lease over waits for this write, and
/// any write after the takeover finds the new epoch.
fn check(db: &mut impl GenericClient, fence: Option<&Fence>) -> Result<(), StoreError> {
    let Some(fence) = fence else { return Ok(()) };
    let current = db
        .query_opt(
            "SELECT epoch FROM leases WHERE key = $1 AND owner = $2 FOR SHARE",
            &[&fence.key.as_bytes().as_slice(), &&*fence.node],
        )?
        .map(|row| row.get::<_, i64>(0));
    if current == Some(fence.epoch) { Ok(()) } else { Err(StoreError::Fenced) }
}

/// Deletes one board (or team), its participants and every document of theirs.
fn delete(db: &mut impl GenericClient, board: &[u8]) -> Result<(), StoreError> {
    for table in ["snapshots", "changes"] {
        db.execute(
            &format!("DELETE FROM {table} WHERE doc = $1 OR doc IN (SELECT desk FROM participants WHERE board = $1)"),
            &[&board],
        )?;
    }
    db.execute("DELETE FROM participants WHERE board = $1", &[&board])?;
    db.execute("DELETE FROM boards WHERE id = $1", &[&board])?;
    Ok(())
}
