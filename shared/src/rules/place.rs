//! Placing a change's operations at their paths, before the change is applied.
//!
//! An operation names the object it writes into by id. An object that already exists is found
//! in the document (its path from the root); an object the change itself creates is found
//! through the operation that creates it. Nothing is applied and nothing but the change's own
//! operations and their parents' paths is read, so a refused change costs no rollback.

use std::collections::HashMap;

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{Automerge, Change, ObjId, ObjType, Prop, ReadDoc as _, ScalarValue};

use super::{Refusal, refuse};

/// The longest key of a map anyone may write. Hindsight's own ids are under 20 characters and a
/// factor link holds two; a longer key only costs memory in every replica.
pub const MAX_KEY_BYTES: usize = 128;

/// One step of a path in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    /// A list element (lists hold nothing a participant may write).
    Elem,
}

impl Seg {
    pub fn key(&self) -> Option<&str> {
        match self {
            Seg::Key(key) => Some(key),
            Seg::Elem => None,
        }
    }
}

/// What an operation does at its path.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Creates a map there.
    MakeMap,
    /// Creates a list, a table or a text object there.
    MakeOther(ObjType),
    /// Puts a scalar value there.
    Put(ScalarValue),
    /// Deletes the values a key holds in conflict but one: Automerge writes a put of the value
    /// a conflicted key already shows this way. The key keeps a value it held, so this is a
    /// put whose value was already checked.
    Settle,
    Delete,
    /// Increments a counter, or formats text: nothing in Hindsight's schemas uses these.
    Other,
}

/// One operation of a change, placed.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedOp {
    /// The path to the key the operation writes, from the document's root.
    pub path: Vec<Seg>,
    pub write: Write,
    /// The operation's position in its change (the id of the object it makes, if it makes one).
    pub index: usize,
    /// If the operation writes into an object the same change made: that object's
    /// [`index`](Self::index).
    pub made_in: Option<usize>,
}

impl PlacedOp {
    /// The path as keys, list elements as `None`.
    pub fn keys(&self) -> Vec<Option<&str>> {
        self.path.iter().map(Seg::key).collect()
    }
}

/// Places every operation of `change` in `doc`, which must not contain the change yet.
///
/// Also refuses changes that carry metadata Hindsight never writes: a message, an author, or
/// extra bytes (each could carry identifying information into the shared history).
pub fn place(doc: &Automerge, change: &Change) -> Result<Vec<PlacedOp>, Refusal> {
    if change.message().is_some() || change.author().is_some() || !change.extra_bytes().is_empty() {
        return refuse("changes may not carry a message, an author or extra bytes");
    }
    let expanded = change.decode();
    let start = u64::from(expanded.start_op);
    // Objects made by this change, by the id of the op that made them: (path, index).
    let mut made: HashMap<OpId, (Vec<Seg>, usize)> = HashMap::new();
    // Paths of objects that exist in the document, looked up once each.
    let mut found: HashMap<OpId, Vec<Seg>> = HashMap::new();
    let mut placed = Vec::with_capacity(expanded.operations.len());
    for (index, op) in expanded.operations.iter().enumerate() {
        let (mut path, made_in, obj) = match &op.obj {
            ObjectId::Root => (Vec::new(), None, ObjId::Root),
            ObjectId::Id(id) => {
                let obj = ObjId::Id(id.counter(), id.actor().clone(), usize::MAX);
                if let Some((path, made_at)) = made.get(id) {
                    (path.clone(), Some(*made_at), obj)
                } else {
                    let path = match found.get(id) {
                        Some(path) => path.clone(),
                        None => {
                            let path = object_path(doc, obj.clone())?;
                            found.insert(id.clone(), path.clone());
                            path
                        }
                    };
                    (path, None, obj)
                }
            }
        };
        path.push(match &op.key {
            // A delete may name any key there is, however it got there.
            Key::Map(key) if key.len() > MAX_KEY_BYTES && !matches!(op.action, OpType::Delete) => {
                return refuse(format!("a key is at most {MAX_KEY_BYTES} bytes"));
            }
            Key::Map(key) => Seg::Key(key.to_string()),
            Key::Seq(_) => Seg::Elem,
        });
        let write = match &op.action {
            OpType::Make(ObjType::Map) => Write::MakeMap,
            OpType::Make(ObjType::Text) => return refuse(super::value::TEXT_OBJECTS),
            OpType::Make(other) => Write::MakeOther(*other),
            OpType::Put(value) => Write::Put(value.clone()),
            OpType::Delete => match &op.key {
                Key::Map(key) if made_in.is_none() && keeps_a_value(doc, &obj, key, op.pred.iter()) => Write::Settle,
                _ => Write::Delete,
            },
            OpType::Increment(_) | OpType::MarkBegin(_) | OpType::MarkEnd(_) => Write::Other,
        };
        if matches!(op.action, OpType::Make(_)) {
            let id = OpId(start + index as u64, expanded.actor_id.clone());
            made.insert(id, (path.clone(), index));
        }
        placed.push(PlacedOp { path, write, index, made_in });
    }
    Ok(placed)
}

/// True if deleting the values `pred` names leaves the key with a value it holds now.
fn keeps_a_value<'a>(doc: &Automerge, obj: &ObjId, key: &str, pred: impl Iterator<Item = &'a OpId> + Clone) -> bool {
    let Ok(values) = doc.get_all(obj, key) else { return false };
    values.iter().any(|(_, id)| match id {
        ObjId::Id(counter, actor, _) => !pred.clone().any(|p| p.counter() == *counter && p.actor() == actor),
        ObjId::Root => false,
    })
}

/// The path from the root to an object that exists in `doc`.
fn object_path(doc: &Automerge, obj: ObjId) -> Result<Vec<Seg>, Refusal> {
    let parents = doc.parents(&obj).or_else(|_| refuse("the change writes to an object that does not exist"))?;
    let mut path: Vec<Seg> = parents
        .map(|parent| match parent.prop {
            Prop::Map(key) => Seg::Key(key),
            Prop::Seq(_) => Seg::Elem,
        })
        .collect();
    path.reverse();
    Ok(path)
}
