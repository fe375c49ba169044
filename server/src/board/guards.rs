//! The rules of [`hindsight_shared::rules`] guarding a board's replica and its desks' replicas,
//! change by change: who is writing (decided per change, so a hand-over in one change binds the
//! next), how much room the board has left, and the typed copies kept in step with the documents.
//!
//! Invariant: the server checks every change before it is stored or relayed, with the same
//! functions of `shared::rules` the client consults.

use std::collections::HashMap;

use automerge::{Automerge, Change};
use hindsight_shared::rules::{self, BoardPart, DeskPart, Refusal, Role, VIEWERS_DO_NOT_WRITE};
use hindsight_shared::schema::{Board, Desk};

use super::replica::Guard;
use hindsight_shared::ids::DocumentId;

/// How many bytes a board and all its desks may take in storage, and how many they take.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub used: usize,
    pub max: usize,
}

impl Quota {
    pub(crate) fn check(&self, change: &Change) -> Result<(), Refusal> {
        if self.used + change.raw_bytes().len() > self.max {
            return Err(Refusal(format!(
                "the board is full: with its desks it may take at most {} MiB",
                self.max / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

/// Guards the board document for one connection.
pub struct BoardGuard<'a> {
    /// The participant the connection is, if it synced a desk.
    pub who: Option<&'a str>,
    pub board: &'a mut Board,
    pub participants: &'a HashMap<String, DocumentId>,
    pub quota: &'a mut Quota,
    /// Set when a change touched what decides which notes are published.
    pub publication_changed: bool,
    /// Set when a change touched what the presence roster shows (the phase, the facilitator).
    pub roster_changed: bool,
    /// Clusters whose recurrence the facilitator confirmed.
    pub confirmed: Vec<String>,
}

impl BoardGuard<'_> {
    fn role(&self) -> Role {
        match self.who {
            Some(id) if self.board.facilitates(id) => Role::Facilitator,
            Some(_) => Role::Participant,
            None => Role::Viewer,
        }
    }
}

impl Guard for BoardGuard<'_> {
    type Touched = (Vec<BoardPart>, usize);

    fn may_write(&self) -> Result<(), Refusal> {
        match self.role() {
            Role::Viewer => Err(Refusal(VIEWERS_DO_NOT_WRITE.into())),
            _ => Ok(()),
        }
    }

    fn before(&mut self, doc: &Automerge, change: &Change) -> Result<Self::Touched, Refusal> {
        self.quota.check(change)?;
        let ops = rules::place(doc, change)?;
        let participants = self.participants;
        let parts = rules::check_board_writes(self.role(), self.board, &ops, |id| participants.contains_key(id))?;
        Ok((parts, change.raw_bytes().len()))
    }

    fn after(&mut self, doc: &Automerge, (parts, bytes): Self::Touched) -> Result<(), Refusal> {
        rules::settle_board(doc, self.board, &parts)?;
        self.quota.used += bytes;
        self.publication_changed |=
            parts.iter().any(|p| matches!(p, BoardPart::Phase | BoardPart::Revealed(_) | BoardPart::Settings));
        self.roster_changed |=
            parts.iter().any(|p| matches!(p, BoardPart::Phase | BoardPart::Facilitator | BoardPart::CoFacilitator(_)));
        for part in parts {
            if let BoardPart::Recurrence(cluster) = part {
                self.confirmed.push(cluster);
            }
        }
        Ok(())
    }
}

/// Guards one desk for its owner's connection.
pub struct DeskGuard<'a> {
    pub desk: &'a mut Desk,
    pub board: &'a Board,
    pub quota: &'a mut Quota,
}

impl Guard for DeskGuard<'_> {
    type Touched = (Vec<DeskPart>, usize);

    fn may_write(&self) -> Result<(), Refusal> {
        Ok(())
    }

    fn before(&mut self, doc: &Automerge, change: &Change) -> Result<Self::Touched, Refusal> {
        self.quota.check(change)?;
        let ops = rules::place(doc, change)?;
        let parts = rules::check_desk_writes(self.desk, self.board, &ops)?;
        Ok((parts, change.raw_bytes().len()))
    }

    fn after(&mut self, doc: &Automerge, (parts, bytes): Self::Touched) -> Result<(), Refusal> {
        rules::settle_desk(doc, self.desk, self.board, &parts)?;
        self.quota.used += bytes;
        Ok(())
    }
}
