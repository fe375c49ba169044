//! Ownership leases (cluster mode): which node owns a board, until when, under which fencing
//! token. The lease row lives in Postgres beside the board; this file holds what a node keeps of
//! the leases it holds and the questions it asks the database about them.
//!
//! A lease is a row `(key, owner, epoch, expires_at)`. Taking a lease that is free (no row, or
//! expired by the database's clock) bumps its epoch; the epoch is the fencing token that every
//! write of the owner carries, and a write whose token is not the row's current one is refused
//! in the same transaction ([`super::StoreError::Fenced`]). So a node that lost its lease (paused
//! past it, cut off) can never store, and so never acknowledge, a change after another node took
//! the board over.
//!
//! The owner also stops on its own before the database would let anyone else in: it counts its
//! lease valid until the moment it *asked* for the renewal plus the lease time, minus a margin
//! ([`Lease::valid`]), which is always earlier than the row's expiry by the database's clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hindsight_shared::ids::DocumentId;
use tokio_util::sync::CancellationToken;

/// A lease this node holds: the fencing token its writes carry, and how long it may act on it.
#[derive(Debug)]
pub struct Lease {
    /// What is leased: a board, or the team whose boards go with it.
    pub key: DocumentId,
    /// This node's id, as the row names it.
    pub node: Arc<str>,
    /// The fencing token.
    pub epoch: i64,
    /// The process's clock origin and the lease's end on it, in milliseconds.
    origin: Instant,
    valid_until_ms: AtomicU64,
    /// Cancelled when the lease is known lost: a board idle on it wakes and lets go.
    lost: CancellationToken,
}

impl Lease {
    /// A lease just taken or renewed by a request sent at `asked`, for `ttl`.
    pub fn new(key: DocumentId, node: Arc<str>, epoch: i64, origin: Instant, asked: Instant, ttl: Duration) -> Self {
        let lease =
            Self { key, node, epoch, origin, valid_until_ms: AtomicU64::new(0), lost: CancellationToken::new() };
        lease.renewed(asked, ttl);
        lease
    }

    /// The renewal sent at `asked` succeeded: the lease holds until then plus `ttl`, less a
    /// fifth of it (time for the owner's last turn to finish before anyone else may start). A
    /// paused virtual machine can make this clock lag the database's; the fencing token still
    /// refuses whatever it writes late.
    pub fn renewed(&self, asked: Instant, ttl: Duration) {
        if self.lost.is_cancelled() {
            return;
        }
        let until = asked.saturating_duration_since(self.origin) + ttl - ttl / 5;
        self.valid_until_ms.fetch_max(until.as_millis() as u64, Ordering::AcqRel);
    }

    /// The lease is lost (another node holds it, or it could not be renewed in time).
    pub fn lose(&self) {
        self.valid_until_ms.store(0, Ordering::Release);
        self.lost.cancel();
    }

    /// Resolves once the lease is known lost.
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    /// True while this node may act on the lease.
    pub fn valid(&self) -> bool {
        (self.origin.elapsed().as_millis() as u64) < self.valid_until_ms.load(Ordering::Acquire)
    }

    /// The fencing token as a write carries it.
    pub fn fence(&self) -> Fence {
        Fence { key: self.key, node: Arc::clone(&self.node), epoch: self.epoch }
    }
}

/// What a write carries in cluster mode: it is applied only if `node` still holds `key` under
/// `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: DocumentId,
    pub node: Arc<str>,
    pub epoch: i64,
}

/// Who holds a lease now, by the database's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub key: DocumentId,
    pub node: String,
    pub epoch: i64,
    /// False if the lease has expired (then anyone may take it).
    pub live: bool,
}

/// A question about leases, answered by the backend outside the write batches.
#[derive(Debug, Clone)]
pub enum LeaseOp {
    /// Takes `key` for `node` if it is free (a new epoch), or extends it if it is `node`'s and
    /// live (the same epoch); answers with the holder after the attempt. Node ids must be unique:
    /// two live processes under one id would share a lease.
    Take { key: DocumentId, node: String, ttl: Duration },
    /// Extends the leases `node` holds, each under its epoch, if still live; answers with those
    /// extended. Rows of `node` it does not name (of a previous run under the same id) are left
    /// to expire.
    Renew { node: String, ttl: Duration, held: Vec<(DocumentId, i64)> },
    /// Who holds these keys.
    Holders { keys: Vec<DocumentId> },
    /// Ends `node`'s lease on `key` under `epoch` now (the epoch stays, so the next owner's is
    /// higher); with no key, every lease of `node`.
    Release { node: String, key: Option<(DocumentId, i64)> },
}

/// The answer to a [`LeaseOp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAnswer {
    Holders(Vec<Holder>),
    Released(u64),
}
