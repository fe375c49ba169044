//! Reading what a document's history and a client's frames hold, for privacy assertions:
//! every operation of every change placed at its path ([`operations`]), and searches for a
//! string through changes ([`change_mentions`]) and received frames ([`frame_mentions`]), raw
//! bytes and decoded alike (a change above 256 bytes travels compressed, so raw bytes alone could
//! hide what a frame carries).

use std::collections::HashMap;

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::sync;
use automerge::{ActorId, Automerge, Change, ChangeHash, ScalarValue};
use hindsight_shared::protocol::WireMessage;

/// One operation of a document's history.
#[derive(Debug, Clone)]
pub struct OpRecord {
    pub change: ChangeHash,
    /// The actor of the change that made it.
    pub actor: ActorId,
    /// The change's timestamp.
    pub time: i64,
    /// The keys from the root to the place it writes (`["notes", "abc", "text"]`); list
    /// positions show as `[]`.
    pub path: Vec<String>,
    pub action: OpType,
}

impl OpRecord {
    /// The string the operation puts, if it puts one.
    pub fn string(&self) -> Option<&str> {
        match &self.action {
            OpType::Put(ScalarValue::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    /// True if the operation writes at or under the path `prefix`.
    pub fn under(&self, prefix: &[&str]) -> bool {
        self.path.len() >= prefix.len() && self.path.iter().zip(prefix).all(|(a, b)| a == b)
    }
}

/// Every operation in `doc`'s history, in causal order, with its path.
pub fn operations(doc: &Automerge) -> Vec<OpRecord> {
    let mut objects: HashMap<(u64, ActorId), Vec<String>> = HashMap::new();
    let mut records = Vec::new();
    for change in doc.get_changes(&[]) {
        let expanded = change.decode();
        let start = expanded.start_op.get();
        for (i, op) in expanded.operations.into_iter().enumerate() {
            let mut path = match &op.obj {
                ObjectId::Root => Vec::new(),
                ObjectId::Id(id) => {
                    objects.get(&(id.counter(), id.actor().clone())).cloned().unwrap_or_else(|| vec!["?".into()])
                }
            };
            path.push(match &op.key {
                Key::Map(key) => key.to_string(),
                Key::Seq(_) => "[]".to_owned(),
            });
            if let OpType::Make(_) = op.action {
                objects.insert((start + i as u64, expanded.actor_id.clone()), path.clone());
            }
            records.push(OpRecord {
                change: change.hash(),
                actor: expanded.actor_id.clone(),
                time: expanded.time,
                path,
                action: op.action,
            });
        }
    }
    records
}

/// True if a change carries `needle` anywhere: in its bytes, a key, a value, its message or its
/// author.
pub fn change_mentions(change: &Change, needle: &str) -> bool {
    let bytes = needle.as_bytes();
    if contains(change.raw_bytes(), bytes) || change.message().is_some_and(|m| m.contains(needle)) {
        return true;
    }
    if change.author().is_some_and(|a| contains(a.as_bytes(), bytes)) {
        return true;
    }
    change.decode().operations.iter().any(|op| {
        let key = matches!(&op.key, Key::Map(k) if k.contains(needle));
        let value = matches!(&op.action, OpType::Put(ScalarValue::Str(s)) if s.contains(needle));
        key || value
    })
}

/// True if any change of `doc`'s history carries `needle`.
pub fn history_mentions(doc: &Automerge, needle: &str) -> bool {
    doc.get_changes(&[]).iter().any(|change| change_mentions(change, needle))
}

/// True if a frame the server sent carries `needle`: in its bytes, or in any change inside a
/// sync message, compressed or not.
pub fn frame_mentions(frame: &[u8], needle: &str) -> bool {
    if contains(frame, needle.as_bytes()) {
        return true;
    }
    frame_changes(frame).iter().any(|change| change_mentions(change, needle))
}

/// Every change a frame carries: the changes of a `sync` or `request` message, each entry read
/// chunk by chunk (changes, compressed changes, bundles, whole documents). Anything else carries
/// none.
pub fn frame_changes(frame: &[u8]) -> Vec<Change> {
    let data = match WireMessage::decode(frame) {
        Ok(WireMessage::Sync { data, .. } | WireMessage::Request { data, .. }) => data,
        _ => return Vec::new(),
    };
    let Ok(message) = sync::Message::decode(&data) else { return Vec::new() };
    message.changes.iter().flat_map(|entry| hindsight_shared::client::changes_in(entry).unwrap_or_default()).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
