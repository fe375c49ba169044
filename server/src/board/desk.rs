//! A participant of a board and their desk as the board holds it: loaded when its owner connects
//! or when the server needs every desk (a phase change, a reveal), and only counted until then.

use std::collections::{HashMap, HashSet};

use hindsight_shared::ids::DocumentId;
use hindsight_shared::schema::Desk;

use super::replica::Replica;

/// Someone who joined the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Public: shown in presence, never written on notes.
    pub id: String,
    pub name: String,
    /// Secret: the id of their desk document.
    pub desk: DocumentId,
}

/// One participant's desk.
pub struct DeskSlot {
    pub participant: Participant,
    /// The desk's size in storage while it is not loaded (then the replica knows it).
    pub stored_bytes: usize,
    pub loaded: Option<LoadedDesk>,
}

/// A desk in memory.
pub struct LoadedDesk {
    pub replica: Replica,
    /// The desk as last read, kept in step with the document change by change.
    pub cache: Desk,
    /// Draft id -> the id it is published under (a hash, worth remembering).
    pub note_ids: HashMap<String, String>,
    /// The notes on the board that come from this desk.
    pub live: HashSet<String>,
    /// The timeline events on the board that come from this desk.
    pub live_events: HashSet<String>,
}

impl LoadedDesk {
    pub fn new(replica: Replica) -> Self {
        let cache = Desk::read(replica.doc()).unwrap_or_default();
        Self { replica, cache, note_ids: HashMap::new(), live: HashSet::new(), live_events: HashSet::new() }
    }
}

/// Every desk of a board, by desk id.
pub type Desks = HashMap<DocumentId, DeskSlot>;
