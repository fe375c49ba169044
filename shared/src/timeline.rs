//! The incident's timeline: events (`{at, text, kind, source}`) written on each participant's
//! desk and published on the board by the server without an author, so the timeline is part of
//! the safe space; the group stars the ones the postmortem keeps. And the paste parser: many
//! lines at once ("14:02 text", "2026-11-30 14:02:10 text", RFC 3339), with what it understood
//! and what it did not.

use autosurgeon::{Hydrate, Reconcile};

use crate::incident::{Time, parse_time};

/// The longest event text, in characters.
pub const MAX_EVENT_CHARS: usize = 500;
/// The longest source (a system, a channel), in characters.
pub const MAX_SOURCE_CHARS: usize = 100;
/// The most events one participant writes on one board.
pub const MAX_EVENTS_PER_DESK: usize = 300;
/// The most events a board's timeline holds.
pub const MAX_EVENTS_PER_BOARD: usize = 5_000;
/// A gap between two events from which the lane says how long nothing was written.
pub const GAP_SECONDS: i64 = 15 * 60;

/// What an event is.
pub const KINDS: [&str; 6] = ["event", "alert", "deploy", "decision", "communication", "milestone"];

/// An event as its writer keeps it on their desk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate)]
pub struct DeskEvent {
    pub id: String,
    /// RFC 3339, with its offset.
    pub at: String,
    pub text: String,
    pub kind: String,
    pub source: String,
}

/// An event on the board's timeline, published by the server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub at: String,
    pub text: String,
    pub kind: String,
    pub source: String,
    /// The postmortem keeps it: anyone may star it, until Done.
    pub starred: bool,
}

impl Event {
    /// When it happened, if its time reads.
    pub fn time(&self) -> Option<Time> {
        parse_time(&self.at)
    }
}

/// The timeline in time order (events whose time does not read last, by id).
pub fn ordered<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<&'a Event> {
    let mut events: Vec<&Event> = events.into_iter().collect();
    events.sort_by_key(|e| (e.time().map_or(i64::MAX, |t| t.unix), e.id.clone()));
    events
}

/// What a paste gave: the lines understood, as (RFC 3339 time, text), and those not.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pasted {
    pub events: Vec<(String, String)>,
    pub not_understood: Vec<String>,
}

/// Reads pasted lines. Each starts with a time: RFC 3339 (`2026-11-30T14:02:10Z`), a date and a
/// time (`2026-11-30 14:02` or `14:02:10`), or a time alone (`14:02`), which takes the date of
/// `base`. Times without an offset take `base`'s offset (the incident's, or the viewer's).
/// Blank lines are skipped; a line that does not start with a time, or has no text after it, is
/// returned as not understood.
pub fn parse_paste(text: &str, base: Time) -> Pasted {
    let mut pasted = Pasted::default();
    let offset = base.offset_minutes;
    let local_day = crate::ledger::iso_day((base.unix + i64::from(offset) * 60) * 1000);
    let zone = crate::incident::offset_text(offset);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.splitn(3, char::is_whitespace).collect();
        let time_of = |clock: &str| {
            let clock = clock.trim_end_matches(['-', '–', ':']);
            let seconds = if clock.len() == 5 { ":00" } else { "" };
            (matches!(clock.len(), 5 | 8) && clock.as_bytes()[2] == b':').then(|| format!("{clock}{seconds}"))
        };
        let found = match words.as_slice() {
            // An RFC 3339 time, then the text.
            [first, ..] if parse_time(first).is_some() => {
                Some((first.to_string(), line[first.len()..].trim().to_owned()))
            }
            // A date and a time of day.
            [date, clock, ..] if date.len() == 10 && time_of(clock).is_some() => {
                let at = format!("{date}T{}{zone}", time_of(clock).unwrap_or_default());
                let rest = line[date.len()..].trim_start()[clock.len()..].trim().to_owned();
                parse_time(&at).is_some().then_some((at, rest))
            }
            // A time of day alone.
            [clock, ..] if time_of(clock).is_some() => {
                let at = format!("{local_day}T{}{zone}", time_of(clock).unwrap_or_default());
                parse_time(&at).is_some().then(|| (at, line[clock.len()..].trim().to_owned()))
            }
            _ => None,
        };
        match found {
            Some((at, text)) if !text.is_empty() => {
                let text = text.trim_start_matches(['-', '–', ':', '|']).trim().to_owned();
                pasted.events.push((at, text.chars().take(MAX_EVENT_CHARS).collect()));
            }
            _ => pasted.not_understood.push(line.chars().take(120).collect()),
        }
    }
    pasted
}

/// Reads a Slack channel export (its documented JSON: a list of messages with `ts`, the
/// seconds since the epoch as a string, `text`, `user` and, in newer exports, `user_profile`)
/// into events at `offset_minutes`. With `keep_names` false the text alone is kept (the choice the
/// importer offers: a timeline without names is part of the safe space), and a mention of
/// someone becomes "@someone"; else `name: text`, with the name the export gives. Slack's markup
/// of links and mentions is made plain. Messages without text (joins, files) are skipped; an
/// error says what is not a Slack export.
pub fn parse_slack(json: &str, offset_minutes: i32, keep_names: bool) -> Result<Pasted, String> {
    use serde_json::Value;
    let messages: Vec<Value> =
        serde_json::from_str(json).map_err(|e| format!("this is not a Slack channel export (a JSON list): {e}"))?;
    fn field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
    }
    // The names the export gives, by user id: the display name, else the real name.
    let mut names: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for message in &messages {
        if let (Some(user), Some(profile)) = (field(message, "user"), message.get("user_profile"))
            && let Some(name) = field(profile, "display_name").or_else(|| field(profile, "real_name"))
        {
            names.insert(user, name);
        }
    }
    let mut pasted = Pasted::default();
    for message in &messages {
        let text = field(message, "text").unwrap_or_default();
        let ts = field(message, "ts").and_then(|ts| ts.split('.').next()?.parse::<i64>().ok());
        let (Some(ts), false) = (ts, text.is_empty()) else {
            if !text.is_empty() {
                pasted.not_understood.push(text.chars().take(120).collect());
            }
            continue;
        };
        let at = crate::incident::format_time(ts, offset_minutes);
        let text = slack_text(text, &names, keep_names);
        let user = field(message, "user");
        let name = user
            .and_then(|u| names.get(u).copied())
            .or_else(|| field(message, "user_name"))
            .or_else(|| field(message, "username"))
            .or(user);
        let text = match name {
            Some(name) if keep_names => format!("{name}: {text}"),
            _ => text,
        };
        pasted.events.push((at, text.chars().take(MAX_EVENT_CHARS).collect()));
    }
    Ok(pasted)
}

/// Slack's message markup made plain: `<@U123>` a mention (a name, or "@someone"), `<!here>`,
/// `<url|label>` and `<url>`, and the `&lt;` `&gt;` `&amp;` it escapes.
fn slack_text(text: &str, names: &std::collections::HashMap<&str, &str>, keep_names: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let inner = &rest[open + 1..open + close];
        let (target, label) = inner.split_once('|').unwrap_or((inner, ""));
        match target.strip_prefix('@').or_else(|| target.strip_prefix("!subteam^")) {
            Some(_) if !keep_names => out.push_str("@someone"),
            Some(id) => {
                out.push('@');
                out.push_str(names.get(id).copied().unwrap_or(if label.is_empty() { id } else { label }));
            }
            None => match target.strip_prefix('!') {
                Some(special) => {
                    out.push('@');
                    out.push_str(if label.is_empty() { special } else { label.trim_start_matches('@') });
                }
                None if label.is_empty() => out.push_str(target),
                None => {
                    out.push_str(label);
                    out.push_str(" (");
                    out.push_str(target);
                    out.push(')');
                }
            },
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Time {
        parse_time("2026-11-30T14:00:00+01:00").unwrap()
    }

    #[test]
    fn pasted_lines_take_the_base_day_and_offset_when_they_lack_them() {
        let pasted = parse_paste(include_str!("../tests/fixtures/incident-paste.txt"), base());
        assert_eq!(
            pasted.events,
            [
                ("2026-11-30T14:02:00+01:00".to_owned(), "Error rate alert fires".to_owned()),
                ("2026-11-30T14:31:10+01:00".to_owned(), "Rollback started".to_owned()),
                ("2026-11-30T13:15:00Z".to_owned(), "Deploy of v42".to_owned()),
                ("2026-11-30T14:09:00+01:00".to_owned(), "Ada acknowledges the page".to_owned()),
            ]
        );
        assert_eq!(pasted.not_understood, ["no time here", "14:60 not a time", "15:00"]);
    }

    #[test]
    fn a_slack_export_becomes_events_with_or_without_names() {
        // A day of a channel as Slack exports it: `ts` is epoch seconds with microseconds, as a
        // string; joins have no text; a bot has a `username`; mentions and links are markup.
        let export = include_str!("../tests/fixtures/slack-channel-2026-11-30.json");
        let anonymous = parse_slack(export, 60, false).expect("an export");
        assert_eq!(
            anonymous.events,
            [
                ("2026-11-30T15:02:00+01:00".to_owned(), "deploy v42 going out to checkout".to_owned()),
                (
                    "2026-11-30T15:09:00+01:00".to_owned(),
                    "@someone errors spiking on checkout, see the dashboard (https://grafana.example/d/abc)".to_owned()
                ),
                ("2026-11-30T15:10:00+01:00".to_owned(), "Incident #42 triggered: Checkout error rate".to_owned()),
                ("2026-11-30T15:30:00+01:00".to_owned(), "rolling back v42".to_owned()),
            ]
        );
        assert_eq!(anonymous.not_understood, ["a message with no time"]);
        let dropped = serde_json::to_string(&anonymous.events).expect("json");
        for name in ["U024BE7LH", "U0G9QF9C6", "Ada", "ada", "Grace", "grace"] {
            assert!(!dropped.contains(name), "{name} is left in an export whose names were dropped");
        }
        let named = parse_slack(export, 0, true).expect("an export");
        let texts: Vec<&str> = named.events.iter().map(|(_, text)| text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "ada: deploy v42 going out to checkout",
                "Grace Hopper: @ada errors spiking on checkout, see the dashboard (https://grafana.example/d/abc)",
                "PagerDuty: Incident #42 triggered: Checkout error rate",
                "ada: rolling back v42",
            ]
        );
        assert!(parse_slack("14:02 not json", 0, false).is_err());
    }

    #[test]
    fn a_time_alone_takes_the_base_s_local_day() {
        // 00:30 at +01:00 is still the previous day in UTC: the day is the base's local one.
        let late = parse_time("2026-12-01T00:30:00+01:00").unwrap();
        assert_eq!(parse_paste("00:40 after midnight", late).events[0].0, "2026-12-01T00:40:00+01:00");
    }

    #[test]
    fn the_timeline_is_in_time_order_whatever_the_offsets() {
        let event = |id: &str, at: &str| Event { id: id.into(), at: at.into(), ..Event::default() };
        let events = [
            event("a", "2026-11-30T14:31:00+01:00"),
            event("b", "2026-11-30T13:05:00Z"),
            event("c", "later"),
            event("d", "2026-11-30T14:09:00+01:00"),
        ];
        let ids: Vec<&str> = ordered(&events).iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["b", "d", "a", "c"]);
    }
}
