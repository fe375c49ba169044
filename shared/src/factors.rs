//! Contributing factors: what led to an incident, as a graph rather than one root cause. A
//! factor (`{id, text, kind, cluster, event, accepted}`) is a trigger, a contributing factor, a
//! mitigator or a risk, may point at a cluster and a timeline event, and may be accepted as a
//! risk. "Led to" links between factors live in the board's `causal` map (`"<from>><to>"` →
//! true), so two people linking at once merge; the rules refuse a cycle on the merged state.
//! Action items point at factors (`addresses`: action id → factor id) and have a type
//! (`action_kinds`: prevent, mitigate, process); the coverage check lists the factors nothing
//! addresses.

use std::collections::{BTreeMap, BTreeSet};

use autosurgeon::{Hydrate, Reconcile};

use crate::schema::Board;

/// What a factor is.
pub const FACTOR_KINDS: [&str; 4] = ["trigger", "contributing", "mitigator", "risk"];
/// What an action item does about its factor.
pub const ACTION_KINDS: [&str; 3] = ["prevent", "mitigate", "process"];
/// The longest factor text.
pub const MAX_FACTOR_CHARS: usize = 300;
/// The most factors a board holds, and the most links.
pub const MAX_FACTORS: usize = 500;
pub const MAX_LINKS: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate, serde::Serialize)]
pub struct Factor {
    pub id: String,
    pub text: String,
    pub kind: String,
    /// The cluster it is about, if any.
    #[autosurgeon(missing = "Default::default")]
    pub cluster: Option<String>,
    /// The timeline event it is about, if any.
    #[autosurgeon(missing = "Default::default")]
    pub event: Option<String>,
    /// The team accepts it as a risk: it needs no action.
    #[autosurgeon(missing = "Default::default")]
    pub accepted: bool,
}

/// The key of a "led to" link.
pub fn link_key(from: &str, to: &str) -> String {
    format!("{from}>{to}")
}

/// The two factors of a link's key.
pub fn parse_link(key: &str) -> Option<(&str, &str)> {
    key.split_once('>').filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.contains('>'))
}

/// The board's links between factors that both exist, as (from, to).
pub fn links(board: &Board) -> Vec<(&str, &str)> {
    board
        .causal
        .iter()
        .filter(|(_, on)| **on)
        .filter_map(|(key, _)| parse_link(key))
        .filter(|(a, b)| board.factors.contains_key(*a) && board.factors.contains_key(*b))
        .collect()
}

/// A cycle among `links`, as the factors on it (the first repeated at the end), if any.
pub fn find_cycle<'a>(links: &[(&'a str, &'a str)]) -> Option<Vec<&'a str>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in links {
        next.entry(a).or_default().push(b);
    }
    // Iterative depth-first search: 0 unseen, 1 on the path, 2 done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    for &start in next.keys() {
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((node, i)) = path.last().copied() {
            let children = next.get(node).map_or(&[][..], Vec::as_slice);
            if let Some(&child) = children.get(i) {
                if let Some(last) = path.last_mut() {
                    last.1 += 1;
                }
                match state.get(child).copied().unwrap_or(0) {
                    0 => {
                        state.insert(child, 1);
                        path.push((child, 0));
                    }
                    1 => {
                        let at = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[at..].iter().map(|(n, _)| *n).collect();
                        cycle.push(child);
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state.insert(node, 2);
                path.pop();
            }
        }
    }
    None
}

/// Each factor's layer for drawing: 0 for factors nothing led to, else one more than the
/// deepest factor that led to it (the graph is acyclic: the rules see to it).
pub fn layers(board: &Board) -> BTreeMap<&str, usize> {
    let links = links(board);
    let mut layer: BTreeMap<&str, usize> = board.factors.keys().map(|k| (k.as_str(), 0)).collect();
    // Relax at most once per factor: longest paths in a DAG.
    for _ in 0..board.factors.len() {
        let mut changed = false;
        for (a, b) in &links {
            let want = layer.get(a).copied().unwrap_or(0) + 1;
            if layer.get(b).copied().unwrap_or(0) < want {
                layer.insert(b, want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

/// Five whys: from `factor` back along what led to it, the longest chain (at most five steps),
/// the factor first.
pub fn whys<'a>(board: &'a Board, factor: &'a str) -> Vec<&'a str> {
    let links = links(board);
    let layer = layers(board);
    let mut chain = vec![factor];
    let mut at = factor;
    while chain.len() <= 5 {
        let cause = links
            .iter()
            .filter(|(_, b)| *b == at)
            .map(|(a, _)| *a)
            .max_by_key(|a| (layer.get(a).copied().unwrap_or(0), std::cmp::Reverse(*a)));
        match cause {
            Some(cause) if !chain.contains(&cause) => {
                chain.push(cause);
                at = cause;
            }
            _ => break,
        }
    }
    chain
}

/// The factors nothing addresses: triggers and contributing factors with no action item
/// pointing at them and not accepted as a risk.
pub fn uncovered(board: &Board) -> Vec<&Factor> {
    let addressed: BTreeSet<&str> = board
        .addresses
        .iter()
        .filter(|(action, _)| board.action_items.contains_key(*action))
        .map(|(_, factor)| factor.as_str())
        .collect();
    board
        .factors
        .values()
        .filter(|f| matches!(f.kind.as_str(), "trigger" | "contributing"))
        .filter(|f| !f.accepted && !addressed.contains(f.id.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(factors: &[(&str, &str)], links: &[(&str, &str)]) -> Board {
        let mut board = Board::default();
        for (id, kind) in factors {
            let factor =
                Factor { id: (*id).into(), text: format!("factor {id}"), kind: (*kind).into(), ..Factor::default() };
            board.factors.insert((*id).into(), factor);
        }
        for (a, b) in links {
            board.causal.insert(link_key(a, b), true);
        }
        board
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        assert_eq!(find_cycle(&[("a", "b"), ("b", "c"), ("a", "c")]), None);
        assert_eq!(find_cycle(&[("a", "b"), ("b", "c"), ("c", "a")]), Some(vec!["a", "b", "c", "a"]));
        assert_eq!(find_cycle(&[("x", "x")]), Some(vec!["x", "x"]));
        assert_eq!(parse_link("a>b"), Some(("a", "b")));
        assert_eq!(parse_link("a>b>c"), None);
        assert_eq!(parse_link(">b"), None);
    }

    #[test]
    fn layers_whys_and_coverage_follow_the_graph() {
        let mut board = board(
            &[("deploy", "trigger"), ("no-canary", "contributing"), ("alert", "mitigator"), ("outage", "contributing")],
            &[("no-canary", "deploy"), ("deploy", "outage"), ("ghost", "outage")],
        );
        let layer = layers(&board);
        assert_eq!((layer["no-canary"], layer["deploy"], layer["outage"], layer["alert"]), (0, 1, 2, 0));
        assert_eq!(whys(&board, "outage"), ["outage", "deploy", "no-canary"]);
        let uncovered: Vec<&str> = uncovered(&board).iter().map(|f| f.id.as_str()).collect();
        assert_eq!(uncovered, ["deploy", "no-canary", "outage"], "the mitigator needs no action");
        board.action_items.insert(
            "a1".into(),
            crate::schema::ActionItem {
                id: "a1".into(),
                text: "Canary".into(),
                owner: String::new(),
                due: String::new(),
                cluster: None,
            },
        );
        board.addresses.insert("a1".into(), "no-canary".into());
        board.factors.get_mut("outage").unwrap().accepted = true;
        let uncovered: Vec<&str> = super::uncovered(&board).iter().map(|f| f.id.as_str()).collect();
        assert_eq!(uncovered, ["deploy"]);
    }
}
