//! The team ledger's rules: anyone holding the team link may change an action's status (along
//! the moves [`Status::may_become`] allows) and its reason; the server writes everything else.

use automerge::Automerge;

use super::value::{line, string};
use super::{PlacedOp, Refusal, Write, refuse};
use crate::ledger::{Ledger, LedgerAction, MAX_REASON_CHARS, Status};
use crate::schema::{self, SchemaError};

/// Checks every write of one change to a ledger before it is applied. Returns the ids of the
/// actions it touches.
pub fn check_ledger_writes(ledger: &Ledger, ops: &[PlacedOp]) -> Result<Vec<String>, Refusal> {
    let mut touched: Vec<String> = Vec::new();
    for op in ops {
        let keys = op.keys();
        let value = match &op.write {
            Write::Put(v) => Some(v),
            Write::Settle => None,
            _ => return refuse("only the server adds or removes what the ledger holds"),
        };
        let (id, field) = match keys.as_slice() {
            [Some("actions"), Some(id), Some(field @ ("status" | "reason"))] => (*id, *field),
            [Some("actions"), _, Some("done_at")] => return refuse("the server stamps when an action was done"),
            [Some("actions"), _, Some("carried")] => {
                return refuse("the server counts how often an action was carried");
            }
            _ => return refuse("only an action's status and reason may be changed on the team page"),
        };
        let Some(action) = ledger.actions.get(id) else { return refuse("there is no such action") };
        if let Some(v) = value {
            if field == "status" {
                let word = string(v, "a status", 16, false)?;
                let Some(to) = Status::parse(word) else {
                    return refuse(format!("there is no status `{word}`: open, doing, done or dropped"));
                };
                if !action.status.may_become(to) {
                    return refuse(format!(
                        "an action that is {} becomes {} only once it is reopened",
                        action.status.as_str(),
                        to.as_str()
                    ));
                }
            } else {
                line(v, "a reason", MAX_REASON_CHARS, true)?;
            }
        }
        if !touched.iter().any(|t| t == id) {
            touched.push(id.to_owned());
        }
    }
    Ok(touched)
}

/// Reads back the actions a change touched, once it is applied, into `ledger`.
pub fn settle_ledger(doc: &Automerge, ledger: &mut Ledger, touched: &[String]) -> Result<(), Refusal> {
    let malformed = |e: SchemaError| Refusal(format!("the ledger would be malformed: {e}"));
    let mut read: Vec<(String, Option<LedgerAction>)> = Vec::with_capacity(touched.len());
    for id in touched {
        read.push((id.clone(), schema::read_entry(doc, "actions", id).map_err(malformed)?));
    }
    for (id, action) in read {
        match action {
            Some(action) => ledger.actions.insert(id, action),
            None => ledger.actions.remove(&id),
        };
    }
    Ok(())
}
