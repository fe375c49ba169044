//! Text as the board shows it: the web links in a note, found so the browser can make them
//! clickable (and nothing else), counts with their noun ("1 dot", "2 dots"), and what a refused
//! change of one's own had done, in words.

use crate::schema::Board;

/// A piece of a note's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span<'a> {
    Text(&'a str),
    /// An `http://` or `https://` address, to show as a link to itself.
    Link(&'a str),
}

/// Splits `text` into plain text and web links. A link starts with `http://` or `https://` at
/// the start of the text or after a space or an opening bracket, runs to the next space, and
/// leaves out the punctuation that usually ends a sentence around it. No other scheme is ever a
/// link, so a note cannot carry a `javascript:` or `data:` address to anyone's click.
pub fn spans(text: &str) -> Vec<Span<'_>> {
    let mut spans = Vec::new();
    let mut plain = 0;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let starts_word = at == 0 || text[..at].ends_with(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'));
        let scheme = ["https://", "http://"]
            .into_iter()
            .find(|s| rest.get(..s.len()).is_some_and(|r| r.eq_ignore_ascii_case(s)));
        if let (true, Some(scheme)) = (starts_word, scheme) {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let link = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '>', '\'', '"']);
            if link.len() > scheme.len() {
                if plain < at {
                    spans.push(Span::Text(&text[plain..at]));
                }
                spans.push(Span::Link(link));
                at += link.len();
                plain = at;
                continue;
            }
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain < text.len() {
        spans.push(Span::Text(&text[plain..]));
    }
    spans
}

/// `n` and its noun, singular for one: "1 dot", "0 dots", "3 action items".
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What one's own change did that the server refused and the browser then took back, told
/// from the board before and after: "your name “Flaky CI” for a group". `None` when the
/// difference is none of the usual ones.
pub fn undone(before: &Board, after: &Board) -> Option<String> {
    let quote = |text: &str| {
        let short: String = text.chars().take(60).collect();
        if short.len() < text.len() { format!("“{short}…”") } else { format!("“{short}”") }
    };
    for (id, cluster) in &before.clusters {
        if after.clusters.get(id).is_none_or(|c| c.title != cluster.title) && !cluster.title.trim().is_empty() {
            return Some(format!("your name {} for a group", quote(&cluster.title)));
        }
    }
    for (id, note) in &before.notes {
        if after.notes.get(id).is_some_and(|n| n.cluster != note.cluster) {
            return Some(format!("your grouping of {}", quote(&note.text)));
        }
    }
    for (id, action) in &before.action_items {
        if after.action_items.get(id) != Some(action) {
            return Some(format!("your action item {}", quote(&action.text)));
        }
    }
    for (id, action) in &after.action_items {
        if !before.action_items.contains_key(id) {
            return Some(format!("deleting the action item {}", quote(&action.text)));
        }
    }
    if before.ranks != after.ranks {
        return Some("your arrangement of the cards".to_owned());
    }
    if before.phase != after.phase {
        return Some(format!("moving to {}", before.phase.title()));
    }
    if before.settings != after.settings || before.timer != after.timer || before.focus != after.focus {
        return Some("your change to the board's settings".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_links_are_found_and_nothing_else() {
        use Span::*;
        assert_eq!(
            spans("see https://example.com/a?b=1."),
            [Text("see "), Link("https://example.com/a?b=1"), Text(".")]
        );
        assert_eq!(
            spans("(http://x.io) and HTTPS://Y.io"),
            [Text("("), Link("http://x.io"), Text(") and "), Link("HTTPS://Y.io")]
        );
        assert_eq!(spans("javascript:alert(1) data:text/html,x"), [Text("javascript:alert(1) data:text/html,x")]);
        assert_eq!(spans("xhttps://a.b is not a link"), [Text("xhttps://a.b is not a link")]);
        assert_eq!(spans("https:// alone"), [Text("https:// alone")]);
        assert_eq!(spans("ünïcödé https://ä.example"), [Text("ünïcödé "), Link("https://ä.example")]);
        assert_eq!(spans(""), []);
    }

    #[test]
    fn a_refused_change_is_told_by_what_it_did() {
        use crate::schema::{Cluster, Phase};
        let mut before = Board { phase: Phase::Vote, ..Board::default() };
        before.clusters.insert("k".into(), Cluster { id: "k".into(), title: "Flaky CI".into() });
        let mut after = before.clone();
        after.clusters.insert("k".into(), Cluster { id: "k".into(), title: String::new() });
        assert_eq!(undone(&before, &after).as_deref(), Some("your name “Flaky CI” for a group"));
        assert_eq!(undone(&before, &before), None);
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "dot", "dots"), "1 dot");
        assert_eq!(count(0, "dot", "dots"), "0 dots");
        assert_eq!(count(2, "action item", "action items"), "2 action items");
    }
}
