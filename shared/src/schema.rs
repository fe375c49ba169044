//! The board document's schema over Automerge, with a typed read API (hydrate) and typed writes.
//!
//! The root map of every board document (field by field in ARCHITECTURE.md):
//! `title`, `template`, `phase`, `columns` (list of `{id, title, prompt}`), `notes` (map from note
//! id to `{id, column, text, created_at, cluster}`), `clusters` and `action_items`.
//!
//! The server creates the root objects once, when the board is created. Browsers only ever put
//! entries into those existing maps, never replace them: two peers that each created a `notes`
//! map would conflict, and one map (with its notes) would lose.

use std::collections::BTreeMap;

use automerge::{ActorId, AutomergeError, ObjType, ROOT};
use autosurgeon::{Doc, Hydrate, HydrateError, ReadDoc, Reconcile, ReconcileError};

use crate::ids::{ColumnId, NoteId};
use crate::templates::Template;

/// The longest note text a board accepts, in characters.
pub const MAX_NOTE_CHARS: usize = 2_000;
/// The longest board title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;

/// The stages of a retrospective, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Reconcile, Hydrate)]
pub enum Phase {
    #[default]
    #[autosurgeon(rename = "write")]
    Write,
    #[autosurgeon(rename = "reveal")]
    Reveal,
    #[autosurgeon(rename = "group")]
    Group,
    #[autosurgeon(rename = "vote")]
    Vote,
    #[autosurgeon(rename = "discuss")]
    Discuss,
    #[autosurgeon(rename = "actions")]
    Actions,
    #[autosurgeon(rename = "done")]
    Done,
}

/// The whole board, as read from its document.
#[derive(Debug, Clone, PartialEq, Default, Reconcile, Hydrate)]
pub struct Board {
    pub title: String,
    /// The id of the template the board was created from.
    pub template: String,
    pub phase: Phase,
    pub columns: Vec<Column>,
    pub notes: BTreeMap<String, Note>,
    pub clusters: BTreeMap<String, Cluster>,
    pub action_items: BTreeMap<String, ActionItem>,
}

/// A column of the board.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Column {
    #[key]
    pub id: String,
    pub title: String,
    /// The question the column asks, shown as a placeholder.
    pub prompt: String,
}

/// A sticky note.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Note {
    pub id: String,
    /// The id of the column the note sits in.
    pub column: String,
    pub text: String,
    /// Milliseconds since the Unix epoch, by the writer's clock.
    pub created_at: i64,
    /// The cluster the note belongs to, if any.
    pub cluster: Option<String>,
}

/// A group of notes that share a root cause.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct Cluster {
    pub id: String,
    pub title: String,
}

/// A follow-up the team commits to.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
pub struct ActionItem {
    pub id: String,
    pub text: String,
    pub owner: String,
    /// An ISO date (`2026-12-01`), or empty.
    pub due: String,
    /// The cluster the action addresses, if any.
    pub cluster: Option<String>,
}

/// Why a document cannot be read or written as a board.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the document is not a board: {0}")]
    Hydrate(#[from] HydrateError),
    #[error("could not write the board: {0}")]
    Reconcile(#[from] ReconcileError),
    #[error("automerge refused the change: {0}")]
    Automerge(#[from] AutomergeError),
    #[error("the document has no `{0}` map")]
    MissingRoot(&'static str),
    #[error("there is no note `{0}`")]
    NoSuchNote(NoteId),
    #[error("there is no column `{0}`")]
    NoSuchColumn(ColumnId),
    #[error("a note may hold at most {MAX_NOTE_CHARS} characters")]
    NoteTooLong,
}

impl Board {
    /// Reads the whole board from a document.
    pub fn read(doc: &impl ReadDoc) -> Result<Self, SchemaError> {
        Ok(autosurgeon::hydrate(doc)?)
    }

    /// The notes of one column, oldest first.
    pub fn notes_in<'a>(&'a self, column: &'a str) -> impl Iterator<Item = &'a Note> + 'a {
        let mut notes: Vec<&Note> = self.notes.values().filter(|n| n.column == column).collect();
        notes.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        notes.into_iter()
    }
}

/// Builds the document of a new board: the root map with every object it will ever need.
///
/// The actor is the server's; browsers never write the root objects.
pub fn new_board_document(
    actor: ActorId,
    title: &str,
    template: &Template,
) -> Result<automerge::Automerge, SchemaError> {
    let board = Board {
        title: title.chars().take(MAX_TITLE_CHARS).collect(),
        template: template.id.to_owned(),
        phase: Phase::Write,
        columns: template
            .columns
            .iter()
            .map(|c| Column { id: c.id.to_owned(), title: c.title.to_owned(), prompt: c.prompt.to_owned() })
            .collect(),
        ..Board::default()
    };
    let mut doc = automerge::Automerge::new().with_actor(actor);
    let mut tx = doc.transaction();
    autosurgeon::reconcile(&mut tx, &board)?;
    tx.commit();
    Ok(doc)
}

fn root_map(doc: &impl ReadDoc, name: &'static str) -> Result<automerge::ObjId, SchemaError> {
    match doc.get(&ROOT, name)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(SchemaError::MissingRoot(name)),
    }
}

fn note_obj(doc: &impl ReadDoc, id: &NoteId) -> Result<automerge::ObjId, SchemaError> {
    let notes = root_map(doc, "notes")?;
    match doc.get(&notes, id.as_str())? {
        Some((automerge::Value::Object(ObjType::Map), obj)) => Ok(obj),
        _ => Err(SchemaError::NoSuchNote(id.clone())),
    }
}

fn check_text(text: &str) -> Result<(), SchemaError> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(SchemaError::NoteTooLong);
    }
    Ok(())
}

/// Adds a note to a column. The note id must be fresh (see [`NoteId::random`]).
pub fn add_note<T: Doc>(tx: &mut T, note: &Note) -> Result<(), SchemaError> {
    check_text(&note.text)?;
    let columns: Vec<Column> = autosurgeon::hydrate_prop(tx, ROOT, "columns")?;
    if !columns.iter().any(|c| c.id == note.column) {
        return Err(SchemaError::NoSuchColumn(ColumnId::from(note.column.as_str())));
    }
    let notes = root_map(tx, "notes")?;
    autosurgeon::reconcile_prop(tx, &notes, note.id.as_str(), note)?;
    Ok(())
}

/// Replaces a note's text.
pub fn set_note_text<T: Doc>(tx: &mut T, id: &NoteId, text: &str) -> Result<(), SchemaError> {
    check_text(text)?;
    let note = note_obj(tx, id)?;
    tx.put(&note, "text", text)?;
    Ok(())
}

/// Deletes a note.
pub fn delete_note<T: Doc>(tx: &mut T, id: &NoteId) -> Result<(), SchemaError> {
    note_obj(tx, id)?;
    let notes = root_map(tx, "notes")?;
    tx.delete(&notes, id.as_str())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates;

    fn board_doc() -> automerge::Automerge {
        let template = templates::find("mad-sad-glad").expect("template exists");
        new_board_document(ActorId::random(), "Sprint 42", template).expect("new board")
    }

    fn note(id: &str, column: &str, text: &str) -> Note {
        Note { id: id.into(), column: column.into(), text: text.into(), created_at: 1, cluster: None }
    }

    #[test]
    fn a_new_board_has_its_template_columns_and_no_notes() {
        let board = Board::read(&board_doc()).expect("readable");
        assert_eq!(board.title, "Sprint 42");
        assert_eq!(board.template, "mad-sad-glad");
        assert_eq!(board.phase, Phase::Write);
        let titles: Vec<_> = board.columns.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["Mad", "Sad", "Glad"]);
        assert!(board.notes.is_empty());
    }

    #[test]
    fn notes_are_added_edited_and_deleted() {
        let mut doc = board_doc();
        let mut tx = doc.transaction();
        add_note(&mut tx, &note("n1", "glad", "Shipped on time")).expect("add");
        add_note(&mut tx, &note("n2", "mad", "Flaky CI")).expect("add");
        set_note_text(&mut tx, &"n1".into(), "Shipped early").expect("edit");
        delete_note(&mut tx, &"n2".into()).expect("delete");
        tx.commit();
        let board = Board::read(&doc).expect("readable");
        assert_eq!(board.notes.len(), 1);
        assert_eq!(board.notes["n1"].text, "Shipped early");
        assert_eq!(board.notes_in("glad").count(), 1);
    }

    #[test]
    fn writes_refuse_bad_input() {
        let mut doc = board_doc();
        let mut tx = doc.transaction();
        assert!(matches!(add_note(&mut tx, &note("n", "nope", "x")), Err(SchemaError::NoSuchColumn(_))));
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        assert!(matches!(add_note(&mut tx, &note("n", "mad", &long)), Err(SchemaError::NoteTooLong)));
        assert!(matches!(set_note_text(&mut tx, &"ghost".into(), "x"), Err(SchemaError::NoSuchNote(_))));
        assert!(matches!(delete_note(&mut tx, &"ghost".into()), Err(SchemaError::NoSuchNote(_))));
    }

    #[test]
    fn concurrent_notes_from_two_peers_merge() {
        let mut a = board_doc();
        let mut b = a.fork();
        let mut tx = a.transaction();
        add_note(&mut tx, &note("a", "mad", "from a")).expect("add");
        tx.commit();
        let mut tx = b.transaction();
        add_note(&mut tx, &note("b", "sad", "from b")).expect("add");
        tx.commit();
        a.merge(&mut b).expect("merge");
        assert_eq!(Board::read(&a).expect("readable").notes.len(), 2);
    }
}
