//! A team in memory: its ledger document (see `hindsight_shared::ledger`), synced to team pages
//! like a board, and the messages boards send it.
//!
//! - [`core`]: the sans-IO ledger: its replica, the rules of who may write what, the server's
//!   own writes (recording a finished retro, stamping `done_at`), events in, effects out.
//! - [`actor`]: the one task per team that owns a [`core::TeamCore`], stores what changed and
//!   answers peers and boards.
//!
//! A team is reached like a board, through a [`crate::board::BoardHandle`] the registry gives:
//! the board actor that finds a team's record in storage hands its inbox to a team actor. Boards
//! tell their team what they did with [`TeamMsg`]s sent through their keeper, never by touching
//! the ledger, so a board and its team may live on different nodes.
//!
//! Invariant: nothing in `team/` imports the registry, connections or routes, and no board's
//! document is read here (tidy: team-knows-no-board).

pub mod actor;
pub mod core;

use hindsight_shared::api::TeamChange;
use hindsight_shared::ledger::{Finished, Ledger, Retro};
use hindsight_shared::schema::ReviewItem;
use tokio::sync::oneshot;

/// What a board, or a route, tells a team. (`Debug` is written by hand: a key holder's message
/// carries the team key.)
pub enum TeamMsg {
    /// A retro starts in the team: the ledger lists it and answers the open actions it reviews
    /// (or why it cannot start: no such team, or the ledger is full).
    NewBoard { retro: Retro, reply: oneshot::Sender<Result<Vec<ReviewItem>, TeamError>> },
    /// A retro of the team reached Done.
    Finished(Box<Finished>),
    /// A retro of the team ended its Review: the statuses the group chose.
    Reviewed { board: String, items: Vec<ReviewItem> },
    /// A retro's facilitator confirmed that a cluster is a past cause come back.
    Confirmed { board: String, cluster: String, past: String },
    /// The ledger as it stands (everything in it is stored), or `None` if there is no such team.
    Snapshot { reply: oneshot::Sender<Option<Ledger>> },
    /// A team key holder's change; answered once it is stored.
    Manage { key: String, change: TeamChange, reply: oneshot::Sender<Result<(), TeamError>> },
}

impl std::fmt::Debug for TeamMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NewBoard { .. } => f.write_str("NewBoard"),
            Self::Finished(_) => f.write_str("Finished"),
            Self::Reviewed { items, .. } => write!(f, "Reviewed({} items)", items.len()),
            Self::Confirmed { .. } => f.write_str("Confirmed"),
            Self::Snapshot { .. } => f.write_str("Snapshot"),
            Self::Manage { change, .. } => {
                f.debug_struct("Manage").field("key", &"<secret>").field("change", change).finish()
            }
        }
    }
}

/// Why a team did not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamError {
    #[error("there is no such team")]
    NoTeam,
    #[error("the team key does not match this team")]
    WrongKey,
    /// The ledger has no room; the sentence says what for.
    #[error("{0}")]
    Full(String),
    #[error("{0}")]
    Invalid(String),
    /// Storage failed, or the team stopped: our fault, not the caller's.
    #[error("the team failed: {0}")]
    Failed(String),
}
