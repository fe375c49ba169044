//! The postmortem document as data: sections of headings, paragraphs, lists and tables, built
//! from a board in one of two layouts (the Google SRE workbook's sections, or Contributors /
//! Mitigators / Risks). [`crate::export`] renders the same document as Markdown and as a printable
//! HTML page, so the two never disagree about what a postmortem says.
//!
//! The document holds text, never markup: each renderer escapes every piece for its format, and a
//! link the board holds is kept as code, never made into a link.

use crate::factors::{self, Factor};
use crate::incident::{Milestone, duration};
use crate::schema::Board;
use crate::timeline;

/// How the document is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The sections of the Google SRE workbook's template: summary, impact, root causes and
    /// trigger, detection, resolution, contributing factors, action items, lessons learned and
    /// the starred timeline.
    #[default]
    Sre,
    /// What contributed, what mitigated, what risks remain (the layout of the Learning from
    /// Incidents community, and of Jeli's and Etsy's reviews), then actions and the timeline.
    Cmr,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::Sre, Layout::Cmr];

    /// The `layout=` value.
    pub fn key(self) -> &'static str {
        match self {
            Layout::Sre => "sre",
            Layout::Cmr => "cmr",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Layout::Sre => "SRE sections",
            Layout::Cmr => "Contributors, mitigators, risks",
        }
    }

    pub fn parse(key: &str) -> Option<Layout> {
        Self::ALL.into_iter().find(|l| l.key() == key)
    }
}

/// A run of text with one emphasis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    Text(String),
    Strong(String),
    Em(String),
    /// Shown as code: links and identifiers, never followed.
    Code(String),
}

/// One line of spans: a paragraph, a list item or a table cell.
pub type Line = Vec<Span>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Para(Line),
    List(Vec<Line>),
    Table {
        head: Vec<&'static str>,
        rows: Vec<Vec<String>>,
    },
    /// What an empty section says instead ("None named.").
    Nothing(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading: &'static str,
    /// 2 for a section, 3 for a part of one.
    pub level: u8,
    pub blocks: Vec<Block>,
}

/// The board's notes that the document quotes, by the template's column ids.
const WENT_WELL: &str = "went-well";
const WENT_WRONG: &str = "went-wrong";
const LUCKY: &str = "lucky";
const SURPRISED: &str = "surprised";

/// The postmortem of `board` in `layout`.
pub fn document(board: &Board, layout: Layout) -> Vec<Section> {
    let doc = Builder { board, links: factors::links(board) };
    match layout {
        Layout::Sre => doc.sre(),
        Layout::Cmr => doc.cmr(),
    }
}

struct Builder<'a> {
    board: &'a Board,
    links: Vec<(&'a str, &'a str)>,
}

fn text(s: impl Into<String>) -> Span {
    Span::Text(s.into())
}

fn section(heading: &'static str, level: u8, blocks: Vec<Block>) -> Section {
    Section { heading, level, blocks }
}

/// A list, or what to say when it is empty.
fn list_or(items: Vec<Line>, empty: &'static str) -> Block {
    if items.is_empty() { Block::Nothing(empty) } else { Block::List(items) }
}

impl Builder<'_> {
    fn sre(&self) -> Vec<Section> {
        let mut out = vec![
            self.summary(),
            self.impact(),
            section("Root causes and trigger", 2, vec![self.factor_list(&["trigger", "contributing"], "None named.")]),
            section(
                "Detection",
                2,
                vec![Block::Para(vec![text(format!(
                    "Started {}; detected {} (after {}); acknowledged {}.",
                    self.at(Milestone::Started),
                    self.at(Milestone::Detected),
                    self.figure("Time to detect"),
                    self.at(Milestone::Acknowledged)
                ))])],
            ),
            section(
                "Resolution",
                2,
                vec![Block::Para(vec![text(format!(
                    "Mitigated {}; resolved {} (after {}).",
                    self.at(Milestone::Mitigated),
                    self.at(Milestone::Resolved),
                    self.figure("Time to resolve")
                ))])],
            ),
        ];
        out.extend(self.facts());
        out.push(section("Contributing factors", 2, vec![self.all_factors()]));
        out.push(self.actions());
        out.push(section("Lessons learned", 2, Vec::new()));
        for (column, heading) in [
            (WENT_WELL, "What went well"),
            (WENT_WRONG, "What went wrong"),
            (LUCKY, "Where we got lucky"),
            (SURPRISED, "What surprised us"),
        ] {
            out.push(section(heading, 3, vec![self.notes(column)]));
        }
        out.push(self.timeline());
        out
    }

    fn cmr(&self) -> Vec<Section> {
        let mut out = vec![
            self.summary(),
            self.impact(),
            self.timeline(),
            self.factors_and_notes("Contributors", &["trigger", "contributing"], WENT_WRONG, "What went wrong"),
            self.factors_and_notes("Mitigators", &["mitigator"], WENT_WELL, "What went well"),
            self.factors_and_notes("Risks", &["risk"], LUCKY, "Where we got lucky"),
            section("Surprises", 2, vec![self.notes(SURPRISED)]),
            self.actions(),
        ];
        out.extend(self.facts());
        out
    }

    fn figure(&self, name: &str) -> String {
        let figures = self.board.incident.figures();
        figures.into_iter().find(|f| f.name == name).and_then(|f| f.seconds).map_or("—".to_owned(), duration)
    }

    fn at(&self, milestone: Milestone) -> String {
        let at = self.board.incident.milestone(milestone);
        if at.is_empty() { "—".to_owned() } else { at.to_owned() }
    }

    fn factor_text(&self, id: &str) -> String {
        self.board.factors.get(id).map_or(String::new(), |f| f.text.clone())
    }

    fn cluster_title(&self, id: &str) -> String {
        self.board.item_title(id).unwrap_or_default()
    }

    fn summary(&self) -> Section {
        let incident = &self.board.incident;
        let severity = if incident.severity.is_empty() { "Unrated" } else { incident.severity.as_str() };
        section(
            "Summary",
            2,
            vec![Block::Para(vec![text(format!(
                "{severity} incident. Time to detect {}, to mitigate {}, to resolve {}.",
                self.figure("Time to detect"),
                self.figure("Time to mitigate"),
                self.figure("Time to resolve")
            ))])],
        )
    }

    fn impact(&self) -> Section {
        let incident = &self.board.incident;
        let mut blocks = vec![if incident.impact.trim().is_empty() {
            Block::Nothing("Not described.")
        } else {
            Block::Para(vec![text(&incident.impact)])
        }];
        if !incident.services.trim().is_empty() {
            blocks.push(Block::Para(vec![text(format!("Affected services: {}.", incident.services))]));
        }
        blocks.push(Block::Para(vec![text(format!("Impact duration: {}.", self.figure("Impact duration")))]));
        section("Impact", 2, blocks)
    }

    /// The factors of `kinds`, each with what it led to.
    fn factor_list(&self, kinds: &[&str], empty: &'static str) -> Block {
        let items = self
            .board
            .factors
            .values()
            .filter(|f| kinds.contains(&f.kind.as_str()))
            .map(|f| {
                let led_to: Vec<String> =
                    self.links.iter().filter(|(a, _)| *a == f.id).map(|(_, b)| self.factor_text(b)).collect();
                let mut line = vec![Span::Strong(format!("{}:", f.kind)), text(format!(" {}", f.text))];
                if !led_to.is_empty() {
                    line.push(text(format!(" → {}", led_to.join(", "))));
                }
                line.extend(self.factor_notes(f));
                line
            })
            .collect();
        list_or(items, empty)
    }

    /// What a factor is marked with: an accepted risk, its cluster, its timeline event.
    fn factor_notes(&self, factor: &Factor) -> Vec<Span> {
        let mut spans = Vec::new();
        if factor.accepted {
            spans.push(Span::Em(" (accepted risk)".into()));
        }
        if let Some(cluster) = &factor.cluster {
            spans.push(Span::Em(format!(" (cluster: {})", self.cluster_title(cluster))));
        }
        if let Some(event) = factor.event.as_deref().and_then(|e| self.board.timeline.get(e)) {
            spans.push(Span::Em(format!(" (at {}: {})", event.at, event.text)));
        }
        spans
    }

    fn all_factors(&self) -> Block {
        let items = self
            .board
            .factors
            .values()
            .map(|f| {
                let mut line = vec![text(format!("{} — {}", f.kind, f.text))];
                line.extend(self.factor_notes(f));
                line
            })
            .collect();
        list_or(items, "None.")
    }

    fn facts(&self) -> Vec<Section> {
        let incident = &self.board.incident;
        let mut facts: Vec<Line> = [
            ("Severity", &incident.severity),
            ("Impact", &incident.impact),
            ("Services", &incident.services),
            ("Tags", &incident.tags),
            ("Time zone", &incident.zone),
        ]
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| vec![Span::Strong(format!("{name}:")), text(format!(" {value}"))])
        .collect();
        for link in incident.links.lines().map(str::trim).filter(|l| !l.is_empty()) {
            facts.push(vec![Span::Strong("Link:".into()), text(" "), Span::Code(link.to_owned())]);
        }
        let milestones = Block::Table {
            head: vec!["Milestone", "Time"],
            rows: Milestone::ALL.into_iter().map(|m| vec![m.title().to_owned(), self.at(m)]).collect(),
        };
        let figures = Block::Table {
            head: vec!["Figure", "Value", "Definition"],
            rows: incident
                .figures()
                .into_iter()
                .map(|f| vec![f.name.to_owned(), f.seconds.map_or("—".to_owned(), duration), f.definition.to_owned()])
                .collect(),
        };
        let mut blocks = Vec::new();
        if !facts.is_empty() {
            blocks.push(Block::List(facts));
        }
        blocks.extend([milestones, figures]);
        vec![section("The incident's facts", 2, blocks)]
    }

    fn actions(&self) -> Section {
        let rows: Vec<Vec<String>> = self
            .board
            .actions_by_due()
            .into_iter()
            .map(|a| {
                let kind = self.board.action_kinds.get(&a.id).map_or("—", String::as_str);
                let factor = self.board.addresses.get(&a.id).map(|f| self.factor_text(f)).unwrap_or_default();
                vec![kind.to_owned(), a.text.clone(), a.owner.clone(), a.due.clone(), factor]
            })
            .collect();
        let block = if rows.is_empty() {
            Block::Nothing("None.")
        } else {
            Block::Table { head: vec!["Type", "Action", "Owner", "Due", "Addresses"], rows }
        };
        section("Action items", 2, vec![block])
    }

    /// A section of the factors of `kinds`, then the notes of `column` under their own label.
    fn factors_and_notes(&self, heading: &'static str, kinds: &[&str], column: &str, label: &str) -> Section {
        let mut blocks = vec![self.factor_list(kinds, "None named.")];
        if self.board.notes_in(column).next().is_some() {
            blocks.push(Block::Para(vec![Span::Em(format!("{label}, as the group wrote it:"))]));
            blocks.push(self.notes(column));
        }
        section(heading, 2, blocks)
    }

    fn notes(&self, column: &str) -> Block {
        list_or(self.board.notes_in(column).map(|n| vec![text(&n.text)]).collect(), "Nothing noted.")
    }

    fn timeline(&self) -> Section {
        let starred: Vec<Line> = timeline::ordered(self.board.timeline.values())
            .into_iter()
            .filter(|e| e.starred)
            .map(|e| vec![text(format!("{} — {}", e.at, e.text)), Span::Em(format!(" ({})", e.kind))])
            .collect();
        section("Timeline", 2, vec![list_or(starred, "No starred events.")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_from_their_keys() {
        for layout in Layout::ALL {
            assert_eq!(Layout::parse(layout.key()), Some(layout));
        }
        assert_eq!(Layout::parse("pdf"), None);
        assert_eq!(Layout::default(), Layout::Sre);
    }

    #[test]
    fn an_empty_postmortem_says_so_in_each_section_rather_than_leaving_it_blank() {
        let board = Board::default();
        for layout in Layout::ALL {
            for section in document(&board, layout) {
                if section.level == 2 && section.heading != "Lessons learned" {
                    assert!(!section.blocks.is_empty(), "{layout:?}: {} is blank", section.heading);
                }
            }
        }
        let cmr = document(&board, Layout::Cmr);
        let headings: Vec<&str> = cmr.iter().map(|s| s.heading).collect();
        assert!(
            headings.starts_with(&["Summary", "Impact", "Timeline", "Contributors", "Mitigators", "Risks"]),
            "{headings:?}"
        );
    }
}
