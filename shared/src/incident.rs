//! An incident's facts on a postmortem board: severity, impact, affected services, tags, links,
//! the incident's time zone, and its milestones (started, detected, acknowledged, mitigated,
//! resolved) as RFC 3339 times with their offsets; and what they give: time to detect, to
//! acknowledge, to mitigate, to resolve, and how long the impact lasted.
//!
//! Times keep the offset they were written with, so a duration is a difference of instants and
//! a daylight-saving change between two milestones costs nothing (tested). Showing a time in the
//! viewer's zone or the incident's (an IANA name) is the browser's job (`Intl.DateTimeFormat`).

use autosurgeon::{Hydrate, Reconcile};

/// The longest severity, in characters (`SEV1`, `P2`, `critical`, ...).
pub const MAX_SEVERITY_CHARS: usize = 16;
/// The longest impact summary.
pub const MAX_IMPACT_CHARS: usize = 1_000;
/// The longest list of services or of tags (comma-separated).
pub const MAX_LIST_CHARS: usize = 300;
/// The longest list of links (one per line).
pub const MAX_LINKS_CHARS: usize = 2_000;
/// The longest time zone name (`America/Argentina/ComodRivadavia` is 32).
pub const MAX_ZONE_CHARS: usize = 64;

/// The severities the UI offers (any short text is allowed).
pub const SEVERITIES: [&str; 5] = ["SEV1", "SEV2", "SEV3", "SEV4", "SEV5"];

/// The board's `incident` map. Empty strings are facts not given yet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Reconcile, Hydrate, serde::Serialize)]
pub struct Incident {
    /// The facts show on this board (the incident-postmortem template starts with them on; the
    /// facilitator may turn them on for any board).
    #[autosurgeon(missing = "Default::default")]
    pub on: bool,
    #[autosurgeon(missing = "Default::default")]
    pub severity: String,
    #[autosurgeon(missing = "Default::default")]
    pub impact: String,
    /// Affected services, comma-separated.
    #[autosurgeon(missing = "Default::default")]
    pub services: String,
    /// Tags, comma-separated.
    #[autosurgeon(missing = "Default::default")]
    pub tags: String,
    /// Links (the incident ticket, dashboards, pull requests), one per line; only `http(s)://`.
    #[autosurgeon(missing = "Default::default")]
    pub links: String,
    /// The incident's time zone, an IANA name (`Europe/Berlin`), to show its times as the
    /// people on call saw them.
    #[autosurgeon(missing = "Default::default")]
    pub zone: String,
    #[autosurgeon(missing = "Default::default")]
    pub started: String,
    #[autosurgeon(missing = "Default::default")]
    pub detected: String,
    #[autosurgeon(missing = "Default::default")]
    pub acknowledged: String,
    #[autosurgeon(missing = "Default::default")]
    pub mitigated: String,
    #[autosurgeon(missing = "Default::default")]
    pub resolved: String,
}

/// One of the incident's milestones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Milestone {
    Started,
    Detected,
    Acknowledged,
    Mitigated,
    Resolved,
}

impl Milestone {
    pub const ALL: [Milestone; 5] =
        [Milestone::Started, Milestone::Detected, Milestone::Acknowledged, Milestone::Mitigated, Milestone::Resolved];

    /// The field's name in the `incident` map.
    pub fn key(self) -> &'static str {
        match self {
            Milestone::Started => "started",
            Milestone::Detected => "detected",
            Milestone::Acknowledged => "acknowledged",
            Milestone::Mitigated => "mitigated",
            Milestone::Resolved => "resolved",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Milestone::Started => "Started",
            Milestone::Detected => "Detected",
            Milestone::Acknowledged => "Acknowledged",
            Milestone::Mitigated => "Mitigated",
            Milestone::Resolved => "Resolved",
        }
    }

    pub fn parse(key: &str) -> Option<Milestone> {
        Self::ALL.into_iter().find(|m| m.key() == key)
    }
}

/// A time read from RFC 3339: seconds since the epoch (UTC) and the offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time {
    pub unix: i64,
    pub offset_minutes: i32,
}

/// Reads an RFC 3339 time with its offset: `2026-11-30T14:02:00Z`, `2026-11-30T14:02+01:00`,
/// `2026-11-30 14:02:10.5-05:00` (seconds and fractions optional, `T` or a space). `None` for
/// anything else, including a time without an offset (it would mean a different instant in every
/// browser).
pub fn parse_time(text: &str) -> Option<Time> {
    let b = text.trim().as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 17 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute) = (digits(11..13)?, digits(14..16)?);
    let mut at = 16;
    let mut second = 0;
    if b.get(at) == Some(&b':') {
        second = digits(at + 1..at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
        }
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b[at + 3] == b':' => {
            let (h, m) = (digits(at + 1..at + 3)?, digits(at + 4..at + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = i32::try_from(h * 60 + m).ok()?;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let local = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second.min(59);
    Some(Time { unix: local - i64::from(offset_minutes) * 60, offset_minutes })
}

/// An offset as RFC 3339 writes it: `+01:00`, `-05:30`.
pub fn offset_text(offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", offset_minutes.abs() / 60, offset_minutes.abs() % 60)
}

/// A time as RFC 3339 at an offset: `2026-11-30T15:02:00+01:00` (what [`parse_time`] reads).
pub fn format_time(unix: i64, offset_minutes: i32) -> String {
    let local = unix + i64::from(offset_minutes) * 60;
    let seconds = local.rem_euclid(86_400);
    format!(
        "{}T{:02}:{:02}:{:02}{}",
        crate::ledger::iso_day(local * 1000),
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
        offset_text(offset_minutes)
    )
}

/// Days since 1970-01-01 of a date (Howard Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A figure computed from the milestones, with what it means.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Figure {
    pub name: &'static str,
    /// How it is computed, shown beside the number.
    pub definition: &'static str,
    /// In seconds; `None` while a milestone it needs is missing.
    pub seconds: Option<i64>,
}

impl Incident {
    /// A milestone's time, if it is given and readable.
    pub fn at(&self, milestone: Milestone) -> Option<Time> {
        parse_time(self.milestone(milestone))
    }

    /// A milestone's text as written.
    pub fn milestone(&self, milestone: Milestone) -> &str {
        match milestone {
            Milestone::Started => &self.started,
            Milestone::Detected => &self.detected,
            Milestone::Acknowledged => &self.acknowledged,
            Milestone::Mitigated => &self.mitigated,
            Milestone::Resolved => &self.resolved,
        }
    }

    /// The milestones out of order: started must be the earliest and resolved the latest given
    /// (the others may come in any order between: an alert can be acknowledged after the impact
    /// was mitigated). A sentence for the first that is not, or `None`.
    pub fn misordered(&self) -> Option<String> {
        let given: Vec<(Milestone, Time)> =
            Milestone::ALL.into_iter().filter_map(|m| self.at(m).map(|t| (m, t))).collect();
        let find = |m: Milestone| given.iter().find(|(g, _)| *g == m).map(|(_, t)| t.unix);
        if let Some(started) = find(Milestone::Started)
            && let Some((m, _)) = given.iter().find(|(_, t)| t.unix < started)
        {
            return Some(format!("{} is before the incident started", m.title().to_lowercase()));
        }
        if let Some(resolved) = find(Milestone::Resolved)
            && let Some((m, _)) = given.iter().find(|(_, t)| t.unix > resolved)
        {
            return Some(format!("{} is after the incident was resolved", m.title().to_lowercase()));
        }
        None
    }

    /// Time to detect, acknowledge, mitigate and resolve, and the impact's duration. The
    /// definitions follow Datadog's incident metrics and Etsy's Morgue: every "time to" counts
    /// from when the incident started (customer impact began), except acknowledging, which counts
    /// from detection (it measures the response to the page).
    pub fn figures(&self) -> Vec<Figure> {
        let between = |from: Milestone, to: Milestone| Some(self.at(to)?.unix - self.at(from)?.unix);
        let impact_end = self.at(Milestone::Mitigated).or(self.at(Milestone::Resolved));
        vec![
            Figure {
                name: "Time to detect",
                definition: "from started to detected",
                seconds: between(Milestone::Started, Milestone::Detected),
            },
            Figure {
                name: "Time to acknowledge",
                definition: "from detected to acknowledged",
                seconds: between(Milestone::Detected, Milestone::Acknowledged),
            },
            Figure {
                name: "Time to mitigate",
                definition: "from started to mitigated",
                seconds: between(Milestone::Started, Milestone::Mitigated),
            },
            Figure {
                name: "Time to resolve",
                definition: "from started to resolved",
                seconds: between(Milestone::Started, Milestone::Resolved),
            },
            Figure {
                name: "Impact duration",
                definition: "from started to mitigated (or resolved, if it was never mitigated apart)",
                seconds: impact_end.zip(self.at(Milestone::Started)).map(|(end, start)| end.unix - start.unix),
            },
        ]
    }
}

/// A duration as people say it: `45 s`, `12 min`, `2 h 05 min`, `3 d 4 h`.
pub fn duration(seconds: i64) -> String {
    let sign = if seconds < 0 { "−" } else { "" };
    let s = seconds.unsigned_abs();
    match s {
        0..60 => format!("{sign}{s} s"),
        60..3_600 => format!("{sign}{} min", s / 60),
        3_600..86_400 => format!("{sign}{} h {:02} min", s / 3_600, s % 3_600 / 60),
        _ => format!("{sign}{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_3339_times_read_with_their_offsets() {
        let utc = parse_time("2026-11-30T14:02:00Z").unwrap();
        assert_eq!(utc, Time { unix: 1_796_047_320, offset_minutes: 0 });
        assert_eq!(parse_time("2026-11-30T15:02:00+01:00").unwrap().unix, utc.unix);
        assert_eq!(parse_time("2026-11-30 09:02:00.250-05:00").unwrap().unix, utc.unix);
        assert_eq!(parse_time("2026-11-30T14:02Z").unwrap().unix, utc.unix);
        assert_eq!(parse_time("2024-02-29T00:00:00Z").unwrap().unix, 1_709_164_800);
        for bad in [
            "",
            "2026-11-30T14:02:00",
            "2026-11-30",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-30T24:00:00Z",
            "2026-11-30T14:02:00+25:00",
            "2026-11-30T14:02:00Zjunk",
            "2026-11-30T14:02:00.Z",
            "２０２６-11-30T14:02:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_are_exact_across_a_daylight_saving_change() {
        // Europe/Berlin moved from +01:00 to +02:00 at 02:00 local time on 2026-03-29: an incident
        // from 01:30 to 03:30 local lasted one hour, not two.
        let incident = Incident {
            started: "2026-03-29T01:30:00+01:00".into(),
            detected: "2026-03-29T01:45:00+01:00".into(),
            acknowledged: "2026-03-29T03:05:00+02:00".into(),
            mitigated: "2026-03-29T03:10:00+02:00".into(),
            resolved: "2026-03-29T03:30:00+02:00".into(),
            ..Incident::default()
        };
        let figures: Vec<Option<i64>> = incident.figures().into_iter().map(|f| f.seconds).collect();
        assert_eq!(figures, [Some(15 * 60), Some(20 * 60), Some(40 * 60), Some(3_600), Some(40 * 60)]);
        // And back in autumn: 02:30 +02:00 to 02:10 +01:00 is 40 minutes later.
        let autumn = Incident {
            started: "2026-10-25T02:30:00+02:00".into(),
            resolved: "2026-10-25T02:10:00+01:00".into(),
            ..Incident::default()
        };
        assert_eq!(autumn.figures()[3].seconds, Some(40 * 60));
        assert_eq!(autumn.misordered(), None);
    }

    #[test]
    fn started_is_the_earliest_and_resolved_the_latest() {
        let mut incident = Incident {
            started: "2026-11-30T14:00:00Z".into(),
            detected: "2026-11-30T13:59:00Z".into(),
            ..Incident::default()
        };
        assert_eq!(incident.misordered().as_deref(), Some("detected is before the incident started"));
        incident.detected = "2026-11-30T14:05:00Z".into();
        incident.resolved = "2026-11-30T14:04:00Z".into();
        assert_eq!(incident.misordered().as_deref(), Some("detected is after the incident was resolved"));
        // Acknowledged after mitigated is allowed.
        incident.resolved = "2026-11-30T16:00:00Z".into();
        incident.mitigated = "2026-11-30T14:30:00Z".into();
        incident.acknowledged = "2026-11-30T14:40:00Z".into();
        assert_eq!(incident.misordered(), None);
        assert_eq!(incident.figures()[4].seconds, Some(30 * 60), "impact ends when it was mitigated");
    }

    #[test]
    fn times_are_written_back_as_they_are_read() {
        for text in ["2026-11-30T15:02:00+01:00", "2026-03-29T01:30:00-05:30", "1969-12-31T23:59:59+00:00"] {
            let time = parse_time(text).unwrap();
            assert_eq!(format_time(time.unix, time.offset_minutes), text);
        }
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(12 * 60 + 5), "12 min");
        assert_eq!(duration(2 * 3_600 + 5 * 60), "2 h 05 min");
        assert_eq!(duration(3 * 86_400 + 4 * 3_600), "3 d 4 h");
        assert_eq!(duration(-90), "−1 min");
    }
}
