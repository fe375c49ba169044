//! Board templates as data: the columns a board starts with, for retros and incident postmortems.

use serde::Serialize;

/// A column of a template: its id in the document, its title and the question it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TemplateColumn {
    pub id: &'static str,
    pub title: &'static str,
    pub prompt: &'static str,
}

/// A board template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub columns: &'static [TemplateColumn],
}

const fn column(id: &'static str, title: &'static str, prompt: &'static str) -> TemplateColumn {
    TemplateColumn { id, title, prompt }
}

/// Every template, in the order the home page offers them.
pub const TEMPLATES: &[Template] = &[
    Template {
        id: "start-stop-continue",
        name: "Start, Stop, Continue",
        description: "The classic: what to begin, what to drop, what to keep.",
        columns: &[
            column("start", "Start", "What should we begin doing?"),
            column("stop", "Stop", "What should we stop doing?"),
            column("continue", "Continue", "What works and should stay?"),
        ],
    },
    Template {
        id: "mad-sad-glad",
        name: "Mad, Sad, Glad",
        description: "Surface how the sprint felt before what to change.",
        columns: &[
            column("mad", "Mad", "What frustrated you?"),
            column("sad", "Sad", "What disappointed you?"),
            column("glad", "Glad", "What made you happy?"),
        ],
    },
    Template {
        id: "4ls",
        name: "4Ls",
        description: "Liked, Learned, Lacked, Longed for.",
        columns: &[
            column("liked", "Liked", "What did you enjoy?"),
            column("learned", "Learned", "What did you learn?"),
            column("lacked", "Lacked", "What was missing?"),
            column("longed-for", "Longed for", "What do you wish we had?"),
        ],
    },
    Template {
        id: "sailboat",
        name: "Sailboat",
        description: "Wind, anchors, rocks and the island we sail to.",
        columns: &[
            column("wind", "Wind", "What pushed us forward?"),
            column("anchors", "Anchors", "What held us back?"),
            column("rocks", "Rocks", "What risks lie ahead?"),
            column("island", "Island", "Where do we want to get to?"),
        ],
    },
    Template {
        id: "went-well",
        name: "Went well / To improve",
        description: "Two questions and the actions they lead to.",
        columns: &[
            column("went-well", "Went well", "What went well?"),
            column("to-improve", "To improve", "What could be better?"),
            column("actions", "Actions", "What will we do about it?"),
        ],
    },
    Template {
        id: "incident-postmortem",
        name: "Incident postmortem",
        description: "A blameless review: facts, timeline, contributing factors and follow-ups.",
        // The timeline is the lane above the columns, causes are the factor graph and follow-ups
        // are action items: the columns keep only the lessons (the SRE template's "went well",
        // "went wrong", "got lucky") and the surprises, which show where our picture of the
        // system was wrong.
        columns: &[
            column("went-well", "What went well", "What helped us detect or recover?"),
            column("went-wrong", "What went wrong", "What made it worse or slower?"),
            column("lucky", "Where we got lucky", "What could have gone worse?"),
            column("surprised", "What surprised us", "What did we not expect, or not know?"),
        ],
    },
];

/// Finds a template by id.
pub fn find(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_and_column_ids_are_unique() {
        let mut ids: Vec<_> = TEMPLATES.iter().map(|t| t.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), TEMPLATES.len());
        for template in TEMPLATES {
            let mut columns: Vec<_> = template.columns.iter().map(|c| c.id).collect();
            columns.sort_unstable();
            columns.dedup();
            assert_eq!(columns.len(), template.columns.len(), "{}", template.id);
        }
        assert_eq!(find("4ls").map(|t| t.columns.len()), Some(4));
        assert!(find("nope").is_none());
    }
}
