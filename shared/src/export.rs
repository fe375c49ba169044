//! Exports of a board: Markdown (for a wiki or an issue), CSV (one row per note), JSON, and a
//! print-friendly HTML page. Pure functions of the board document, so the server's export
//! endpoint and the browser (offline too) produce the same files.
//!
//! Exports hold only what the board holds, so anonymous notes stay anonymous: a note names its
//! author only on a board that uses named notes.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ledger::{Ledger, LedgerAction};
use crate::postmortem::{Block, Layout, Section, Span};
use crate::schema::{Board, VoteItem};
use crate::templates;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Json,
    Html,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Markdown, Format::Csv, Format::Json, Format::Html];

    /// The `format=` value and file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Html => "html",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.extension() == name || (name == "markdown" && *f == Format::Markdown))
    }
}

/// Renders the board in `format`; a postmortem in the SRE template's sections.
pub fn render(board: &Board, format: Format) -> String {
    render_as(board, format, Layout::default())
}

/// Renders the board in `format`, a postmortem's document in `layout` (Markdown and HTML; CSV
/// and JSON are the same in either).
pub fn render_as(board: &Board, format: Format, layout: Layout) -> String {
    match format {
        Format::Markdown => markdown(board, layout),
        Format::Csv => csv(board),
        Format::Json => json(board),
        Format::Html => html(board, layout),
    }
}

/// A file name for the export: the title, made safe, and the extension.
pub fn file_name(board: &Board, format: Format) -> String {
    format!("{}.{}", stem(&board.title, "hindsight-board"), format.extension())
}

/// A title made safe for a file name, or `fallback`.
fn stem(title: &str, fallback: &str) -> String {
    let stem: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if stem.is_empty() { fallback.to_owned() } else { stem }
}

/// A file name for a team's export.
pub fn team_file_name(ledger: &Ledger, format: Format) -> String {
    format!("{}-actions.{}", stem(&ledger.name, "hindsight-team"), format.extension())
}

/// Renders a team: its actions as Markdown or CSV (one row per action, oldest first), or the
/// whole ledger as JSON. `today` (ISO) dates the actions' ages and overdue marks.
pub fn render_team(ledger: &Ledger, format: Format, today: &str) -> String {
    let mut actions: Vec<&LedgerAction> = ledger.actions.values().collect();
    actions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let retro = |a: &LedgerAction| ledger.retros.get(&a.board).map(|r| r.title.clone()).unwrap_or_default();
    match format {
        Format::Csv => {
            let mut out =
                String::from("status,action,owner,due,overdue,created,done,carried,addresses,retro,reason\r\n");
            for a in actions {
                let row = [
                    a.status.as_str().to_owned(),
                    field(&a.text),
                    field(&a.owner),
                    a.due.clone(),
                    if a.is_overdue(today) { "yes".into() } else { String::new() },
                    crate::ledger::iso_day(a.created_at),
                    a.done_at.map(crate::ledger::iso_day).unwrap_or_default(),
                    a.carried.to_string(),
                    field(&a.origin),
                    field(&retro(a)),
                    field(&a.reason),
                ];
                out.push_str(&row.join(","));
                out.push_str("\r\n");
            }
            out
        }
        Format::Json => serde_json::to_string_pretty(ledger).unwrap_or_else(|_| "{}".into()),
        Format::Markdown | Format::Html => {
            let mut out = format!("# {}: action items\n\n", md(&ledger.name));
            out.push_str("| Status | Action | Owner | Due | Carried | From |\n|---|---|---|---|---|---|\n");
            for a in actions {
                let status = if a.is_overdue(today) {
                    format!("{} (overdue)", a.status.as_str())
                } else {
                    a.status.as_str().to_owned()
                };
                let _ = writeln!(
                    out,
                    "| {status} | {} | {} | {} | {} | {} |",
                    md(&a.text),
                    md(&a.owner),
                    md(&a.due),
                    a.carried,
                    md(&retro(a))
                );
            }
            out
        }
    }
}

fn template_name(board: &Board) -> &str {
    templates::find(&board.template).map_or(board.template.as_str(), |t| t.name)
}

/// The name of each item, as every view gives it (see [`Board::item_title`]), found in one pass
/// for the whole board: an export of thousands of notes looks each up once.
struct Titles<'a> {
    board: &'a Board,
    clusters: std::collections::BTreeMap<&'a str, String>,
}

impl<'a> Titles<'a> {
    fn new(board: &'a Board) -> Self {
        Self { board, clusters: board.cluster_titles() }
    }

    fn of(&self, id: &str) -> String {
        match self.board.notes.get(id) {
            Some(note) => note.text.clone(),
            None => self.clusters.get(id).cloned().unwrap_or_default(),
        }
    }
}

/// The item titles and dots, most voted first.
fn ranking(board: &Board, titles: &Titles<'_>) -> Vec<(VoteItem, String, i64)> {
    board
        .ranked_items()
        .into_iter()
        .map(|(item, votes)| {
            let title = titles.of(item.id());
            (item, title, votes)
        })
        .collect()
}

/// Text from the board as inert Markdown: one line, no HTML, no links or images, no table cells
/// broken open. Markdown's punctuation is escaped with a backslash and `<`, `>`, `&` become
/// entities, so a note that says `<img src=x onerror=...>` or `[click](javascript:...)` shows as
/// what it says in every renderer.
fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '!' | '#' | '|' | '{' | '}' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    // A bare address becomes a link in GitHub's and GitLab's Markdown: the colon of `://` and
    // the dot of `www.` are written as entities, which show as themselves and link nothing.
    if out.contains("://") || out.contains("www.") {
        out = out.replace("://", "&#58;//").replace("www.", "www&#46;");
    }
    out
}

fn markdown(board: &Board, layout: Layout) -> String {
    let titles = Titles::new(board);
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", md(&board.title));
    let _ = writeln!(out, "*{} · phase: {}*\n", template_name(board), board.phase.title());
    if board.incident.on {
        document_markdown(&mut out, &crate::postmortem::document(board, layout));
        out.push_str("## Appendix: the board\n\n");
    }
    for column in &board.columns {
        let _ = writeln!(out, "## {}\n", md(&column.title));
        let mut any = false;
        for note in board.notes_in(&column.id) {
            any = true;
            let author = note.author.as_deref().map(|a| format!(" — {}", md(a))).unwrap_or_default();
            let cluster =
                board.cluster_of(note).map(|c| format!(" *(in: {})*", md(&titles.of(&c.id)))).unwrap_or_default();
            let _ = writeln!(out, "- {}{author}{cluster}", md(&note.text));
        }
        if !any {
            out.push_str("*No notes.*\n");
        }
        out.push('\n');
    }
    let ranked = ranking(board, &titles);
    if !ranked.is_empty() {
        out.push_str("## Items by votes\n\n| # | Item | Notes | Dots |\n|---|---|---|---|\n");
        for (i, (item, title, votes)) in ranked.iter().enumerate() {
            let notes = match item {
                VoteItem::Cluster(_, notes) => notes.len(),
                VoteItem::Note(_) => 1,
            };
            let _ = writeln!(out, "| {} | {} | {notes} | {votes} |", i + 1, md(title));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## {}\n", actions_heading(board));
    if board.action_items.is_empty() {
        out.push_str("*None.*\n");
    } else {
        out.push_str("| Action | Owner | Due | Addresses |\n|---|---|---|---|\n");
        for action in board.actions_by_due() {
            let addresses = action.cluster.as_deref().map(|c| titles.of(c)).unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                md(&action.text),
                md(&action.owner),
                md(&action.due),
                md(&addresses)
            );
        }
    }
    if let Some((raters, mean)) = board.roti_mean() {
        let _ = writeln!(out, "\n## Return on time invested\n");
        let counts: Vec<String> = board.roti.iter().map(|(rating, count)| format!("{rating}: {count}")).collect();
        let _ = writeln!(out, "Mean {mean:.1} out of 5 from {raters} ratings ({}).", counts.join(", "));
    }
    out
}

/// The postmortem document as Markdown: every piece of text escaped by [`md`], links as code.
fn document_markdown(out: &mut String, sections: &[Section]) {
    let line = |spans: &[Span]| -> String {
        spans
            .iter()
            .map(|span| match span {
                Span::Text(t) => md(t),
                Span::Strong(t) => format!("**{}**", md(t)),
                Span::Em(t) if t.starts_with(' ') => format!(" *{}*", md(t.trim_start())),
                Span::Em(t) => format!("*{}*", md(t)),
                Span::Code(t) => format!("`{}`", t.replace(['`', '\n', '\r'], "'")),
            })
            .collect()
    };
    for section in sections {
        let _ = writeln!(out, "{} {}\n", "#".repeat(section.level.into()), md(section.heading));
        for block in &section.blocks {
            match block {
                Block::Para(spans) => {
                    let _ = writeln!(out, "{}\n", line(spans));
                }
                Block::Nothing(says) => {
                    let _ = writeln!(out, "*{says}*\n");
                }
                Block::List(items) => {
                    for item in items {
                        let _ = writeln!(out, "- {}", line(item));
                    }
                    out.push('\n');
                }
                Block::Table { head, rows } => {
                    let _ = writeln!(out, "| {} |\n|{}", head.join(" | "), "---|".repeat(head.len()));
                    for row in rows {
                        let cells: Vec<String> = row.iter().map(|c| md(c)).collect();
                        let _ = writeln!(out, "| {} |", cells.join(" | "));
                    }
                    out.push('\n');
                }
            }
        }
    }
}

/// The postmortem document as HTML: every piece of text escaped, links as code, never anchors.
fn document_html(out: &mut String, sections: &[Section]) {
    let line = |spans: &[Span]| -> String {
        spans
            .iter()
            .map(|span| match span {
                Span::Text(t) => escape(t),
                Span::Strong(t) => format!("<strong>{}</strong>", escape(t)),
                Span::Em(t) => format!("<em>{}</em>", escape(t)),
                Span::Code(t) => format!("<code>{}</code>", escape(t)),
            })
            .collect()
    };
    out.push_str("<article class=\"postmortem\">");
    for section in sections {
        let level = section.level;
        let _ = write!(out, "<h{level}>{}</h{level}>", escape(section.heading));
        for block in &section.blocks {
            match block {
                Block::Para(spans) => {
                    let _ = write!(out, "<p>{}</p>", line(spans));
                }
                Block::Nothing(says) => {
                    let _ = write!(out, "<p class=\"none\">{}</p>", escape(says));
                }
                Block::List(items) => {
                    out.push_str("<ul>");
                    for item in items {
                        let _ = write!(out, "<li>{}</li>", line(item));
                    }
                    out.push_str("</ul>");
                }
                Block::Table { head, rows } => {
                    out.push_str("<table><thead><tr>");
                    for h in head {
                        let _ = write!(out, "<th>{}</th>", escape(h));
                    }
                    out.push_str("</tr></thead><tbody>");
                    for row in rows {
                        out.push_str("<tr>");
                        for cell in row {
                            let _ = write!(out, "<td>{}</td>", escape(cell));
                        }
                        out.push_str("</tr>");
                    }
                    out.push_str("</tbody></table>");
                }
            }
        }
    }
    out.push_str("</article>");
}

/// The heading of the agreed action items: "Action items", unless a column of the board is
/// called that (a postmortem's ideas for follow-up), which it must not be confused with.
fn actions_heading(board: &Board) -> &'static str {
    if board.columns.iter().any(|c| c.title.trim().eq_ignore_ascii_case("action items")) {
        "Agreed action items"
    } else {
        "Action items"
    }
}

/// One CSV field, quoted when it needs to be.
fn field(text: &str) -> String {
    // A leading =, +, -, @, tab or carriage return can start a formula in a spreadsheet (OWASP's
    // CSV injection list): quote the field and prefix a tick.
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) || text.starts_with('\'') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv(board: &Board) -> String {
    let titles = Titles::new(board);
    let named = board.notes.values().any(|n| n.author.is_some());
    let mut out =
        String::from(if named { "column,note,cluster,votes,author\r\n" } else { "column,note,cluster,votes\r\n" });
    for column in &board.columns {
        for note in board.notes_in(&column.id) {
            let cluster = board.cluster_of(note);
            let item = cluster.map_or(note.id.as_str(), |c| c.id.as_str());
            let votes = board.vote_totals.get(item).map(i64::to_string).unwrap_or_default();
            let mut row = vec![
                field(&column.title),
                field(&note.text),
                field(&cluster.map(|c| titles.of(&c.id)).unwrap_or_default()),
                votes,
            ];
            if named {
                row.push(field(note.author.as_deref().unwrap_or("")));
            }
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

#[derive(Serialize)]
struct JsonBoard<'a> {
    /// The export's format: 2 added `postmortem`.
    version: u32,
    title: &'a str,
    template: &'a str,
    phase: &'static str,
    columns: Vec<JsonColumn<'a>>,
    clusters: Vec<JsonCluster<'a>>,
    items_by_votes: Vec<JsonItem>,
    action_items: Vec<JsonAction<'a>>,
    /// How many gave each ROTI rating, once published.
    #[serde(skip_serializing_if = "Option::is_none")]
    roti: Option<&'a std::collections::BTreeMap<String, i64>>,
    /// On a board with the incident's facts: the facts, their figures, the timeline in time
    /// order, the factors with their links, and what each action item addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    postmortem: Option<JsonPostmortem<'a>>,
}

#[derive(Serialize)]
struct JsonPostmortem<'a> {
    incident: &'a crate::incident::Incident,
    figures: Vec<crate::incident::Figure>,
    timeline: Vec<&'a crate::timeline::Event>,
    factors: Vec<&'a crate::factors::Factor>,
    led_to: Vec<(&'a str, &'a str)>,
    action_factors: &'a std::collections::BTreeMap<String, String>,
    action_kinds: &'a std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct JsonColumn<'a> {
    id: &'a str,
    title: &'a str,
    notes: Vec<JsonNote<'a>>,
}

#[derive(Serialize)]
struct JsonNote<'a> {
    id: &'a str,
    text: &'a str,
    cluster: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonCluster<'a> {
    id: &'a str,
    title: String,
    notes: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonItem {
    id: String,
    title: String,
    votes: i64,
}

#[derive(Serialize)]
struct JsonAction<'a> {
    text: &'a str,
    owner: &'a str,
    due: &'a str,
    addresses: Option<&'a str>,
}

fn json(board: &Board) -> String {
    let titles = Titles::new(board);
    let export = JsonBoard {
        title: &board.title,
        template: &board.template,
        phase: board.phase.as_str(),
        columns: board
            .columns
            .iter()
            .map(|c| JsonColumn {
                id: &c.id,
                title: &c.title,
                notes: board
                    .notes_in(&c.id)
                    .map(|n| JsonNote {
                        id: &n.id,
                        text: &n.text,
                        cluster: board.cluster_of(n).map(|c| c.id.as_str()),
                        author: n.author.as_deref(),
                    })
                    .collect(),
            })
            .collect(),
        clusters: board
            .vote_items()
            .iter()
            .filter_map(|item| match item {
                VoteItem::Cluster(cluster, notes) => Some((cluster.id.clone(), notes.len())),
                VoteItem::Note(_) => None,
            })
            .filter_map(|(id, _)| board.clusters.get(&id))
            .map(|cluster| JsonCluster {
                id: &cluster.id,
                title: titles.of(&cluster.id),
                notes: board
                    .notes
                    .values()
                    .filter(|n| n.cluster.as_deref() == Some(cluster.id.as_str()))
                    .map(|n| n.id.as_str())
                    .collect(),
            })
            .collect(),
        items_by_votes: ranking(board, &titles)
            .into_iter()
            .map(|(item, title, votes)| JsonItem { id: item.id().to_owned(), title, votes })
            .collect(),
        action_items: board
            .actions_by_due()
            .into_iter()
            .map(|a| JsonAction { text: &a.text, owner: &a.owner, due: &a.due, addresses: a.cluster.as_deref() })
            .collect(),
        roti: board.roti_mean().map(|_| &board.roti),
        version: 2,
        postmortem: board.incident.on.then(|| JsonPostmortem {
            incident: &board.incident,
            figures: board.incident.figures(),
            timeline: crate::timeline::ordered(board.timeline.values()),
            factors: board.factors.values().collect(),
            led_to: crate::factors::links(board),
            action_factors: &board.addresses,
            action_kinds: &board.action_kinds,
        }),
    };
    serde_json::to_string_pretty(&export).unwrap_or_else(|_| "{}".into())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(board: &Board, layout: Layout) -> String {
    let titles = Titles::new(board);
    let mut out = String::new();
    let title = escape(&board.title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Hindsight</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{PRINT_CSS}</style></head><body>\
         <header><h1>{title}</h1><p class=\"meta\">{} · {}</p></header>",
        escape(template_name(board)),
        escape(board.phase.title())
    );
    if board.incident.on {
        document_html(&mut out, &crate::postmortem::document(board, layout));
        out.push_str("<h2 class=\"appendix\">Appendix: the board</h2>");
    }
    let ranked = ranking(board, &titles);
    if !ranked.is_empty() {
        out.push_str("<section><h2>Items by votes</h2><ol class=\"ranked\">");
        for (item, title, votes) in &ranked {
            let _ =
                write!(out, "<li><div class=\"row\"><strong>{}</strong><span>{votes} dots</span></div>", escape(title));
            if let VoteItem::Cluster(_, notes) = item {
                out.push_str("<ul>");
                for note in notes {
                    let _ = write!(out, "<li>{}</li>", escape(&note.text));
                }
                out.push_str("</ul>");
            }
            out.push_str("</li>");
        }
        out.push_str("</ol></section>");
    }
    let _ = write!(out, "<section><h2>{}</h2>", actions_heading(board));
    if board.action_items.is_empty() {
        out.push_str("<p>None.</p>");
    } else {
        out.push_str(
            "<table><thead><tr><th>Action</th><th>Owner</th><th>Due</th><th>Addresses</th></tr></thead><tbody>",
        );
        for action in board.actions_by_due() {
            let addresses = action.cluster.as_deref().map(|c| titles.of(c)).unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&action.text),
                escape(&action.owner),
                escape(&action.due),
                escape(&addresses)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section><section><h2>All notes</h2><div class=\"columns\">");
    for column in &board.columns {
        let _ = write!(out, "<div><h3>{}</h3><ul>", escape(&column.title));
        for note in board.notes_in(&column.id) {
            let author = note.author.as_deref().map(|a| format!(" <em>— {}</em>", escape(a))).unwrap_or_default();
            let _ = write!(out, "<li>{}{author}</li>", escape(&note.text));
        }
        out.push_str("</ul></div>");
    }
    out.push_str("</div></section><footer>Exported from Hindsight</footer></body></html>");
    out
}

const PRINT_CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1c2033;max-width:820px;\
margin:32px auto;padding:0 24px;line-height:1.45}h1{margin:0 0 4px}h2{border-bottom:2px solid #e3e6ef;padding-bottom:4px;\
margin-top:28px}.meta{color:#5b6178;margin:0}.ranked .row{display:flex;justify-content:space-between;gap:12px}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;border-bottom:1px solid #e3e6ef;padding:6px 8px;\
vertical-align:top}.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px}\
h3{margin:8px 0 4px;font-size:15px}footer{margin-top:32px;color:#8c91a6;font-size:12px}\
.none{color:#5b6178;font-style:italic}code{font-size:13px;overflow-wrap:anywhere}.appendix{margin-top:48px}\
@media print{body{margin:0;max-width:none}h2,h3{break-after:avoid}li,tr{break-inside:avoid}.appendix{break-before:page}}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ActionItem, Cluster, Column, Note, Phase};

    fn board(named: bool) -> Board {
        let mut board = Board { title: "Sprint 42: retro".into(), template: "mad-sad-glad".into(), ..Board::default() };
        board.phase = Phase::Done;
        for (id, title) in [("mad", "Mad"), ("glad", "Glad")] {
            board.columns.push(Column { id: id.into(), title: title.into(), prompt: String::new() });
        }
        let author = |name: &str| named.then(|| name.to_owned());
        let notes = [
            Note {
                id: "a".into(),
                column: "mad".into(),
                text: "Flaky, slow \"CI\"".into(),
                created_at: 1,
                cluster: Some("k".into()),
                author: author("Ann"),
            },
            Note {
                id: "b".into(),
                column: "mad".into(),
                text: "=cmd|' /C calc'!A0".into(),
                created_at: 2,
                cluster: Some("k".into()),
                author: author("Bob"),
            },
            Note {
                id: "c".into(),
                column: "glad".into(),
                text: "Demo <b>rocked</b>".into(),
                created_at: 3,
                cluster: None,
                author: author("Ann"),
            },
        ];
        for note in notes {
            board.notes.insert(note.id.clone(), note);
        }
        board.clusters.insert("k".into(), Cluster { id: "k".into(), title: "Our CI".into() });
        board.vote_totals.insert("k".into(), 7);
        board.vote_totals.insert("c".into(), 2);
        board.action_items.insert(
            "x".into(),
            ActionItem {
                id: "x".into(),
                text: "Fix CI".into(),
                owner: "Sam".into(),
                due: "2026-12-01".into(),
                cluster: Some("k".into()),
            },
        );
        board
    }

    #[test]
    fn markdown_has_columns_ranking_and_actions() {
        let md = render(&board(false), Format::Markdown);
        assert!(md.starts_with("# Sprint 42: retro"));
        assert!(md.contains("## Mad") && md.contains("- Flaky, slow \"CI\" *(in: Our CI)*"), "{md}");
        assert!(md.contains("| 1 | Our CI | 2 | 7 |"));
        assert!(md.contains("| Fix CI | Sam | 2026-12-01 | Our CI |"));
        assert!(!md.contains("Return on time invested"), "no ROTI before it is published");
    }

    #[test]
    fn a_published_roti_is_exported_as_its_histogram_and_mean() {
        let mut board = board(false);
        board.roti =
            [("1", 0), ("2", 1), ("3", 0), ("4", 2), ("5", 1)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(board.roti_mean(), Some((4, 3.75)));
        let md = render(&board, Format::Markdown);
        assert!(md.contains("## Return on time invested") && md.contains("Mean 3.8 out of 5 from 4 ratings"), "{md}");
        let json: serde_json::Value = serde_json::from_str(&render(&board, Format::Json)).expect("json");
        assert_eq!(json["roti"]["4"], 2);
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let csv = render(&board(false), Format::Csv);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], "column,note,cluster,votes");
        assert_eq!(lines[1], "Mad,\"Flaky, slow \"\"CI\"\"\",Our CI,7");
        assert_eq!(lines[2], "Mad,\"'=cmd|' /C calc'!A0\",Our CI,7");
        assert_eq!(lines[3], "Glad,Demo <b>rocked</b>,,2");
    }

    #[test]
    fn markdown_and_csv_are_inert_whatever_a_note_says() {
        let mut board = board(false);
        let note = board.notes.get_mut("c").expect("note c");
        note.text = "<img src=x onerror=alert(1)> [click](javascript:alert(1)) ![x](https://evil.example/t.png)".into();
        let md = render(&board, Format::Markdown);
        assert!(!md.contains("<img") && md.contains("&lt;img"), "raw HTML is escaped: {md}");
        assert!(!md.contains("](javascript:") && !md.contains("![x](https:"), "no live link or image: {md}");
        assert!(md.contains("\\[click\\]\\(javascript:alert\\(1\\)\\)"), "{md}");
        board.notes.get_mut("c").expect("note c").text = "see https://evil.example/x and www.evil.example".into();
        let md = render(&board, Format::Markdown);
        assert!(!md.contains("https://") && !md.contains("www.evil"), "a bare address is not left to autolink: {md}");
        assert!(md.contains("https&#58;//evil.example/x"), "{md}");
        for dangerous in ["\tcmd", "\rcmd", "@SUM(A1)", "+1", "-1"] {
            board.notes.get_mut("c").expect("note c").text = dangerous.into();
            let csv = render(&board, Format::Csv);
            let quoted = format!("\"'{dangerous}\"");
            assert!(csv.contains(&quoted), "{dangerous:?} is defused: {csv:?}");
        }
    }

    #[test]
    fn json_and_html_are_well_formed_and_escaped() {
        let json: serde_json::Value = serde_json::from_str(&render(&board(false), Format::Json)).expect("valid JSON");
        assert_eq!(json["items_by_votes"][0]["votes"], 7);
        assert_eq!(json["columns"][0]["notes"].as_array().map(Vec::len), Some(2));
        let html = render(&board(false), Format::Html);
        assert!(html.contains("Demo &lt;b&gt;rocked&lt;/b&gt;") && !html.contains("<b>rocked"));
    }

    #[test]
    fn anonymous_boards_export_no_authors_and_named_ones_do() {
        for format in Format::ALL {
            let anonymous = render(&board(false), format);
            assert!(!anonymous.contains("Ann") && !anonymous.contains("Bob"), "{format:?} leaks an author");
            let named = render(&board(true), format);
            assert!(named.contains("Ann"), "{format:?} drops the author of a named note");
        }
    }

    #[test]
    fn an_untitled_cluster_is_named_after_its_first_note_and_a_column_called_action_items_is_not_confused() {
        let mut board = board(false);
        board.clusters.insert("k".into(), Cluster { id: "k".into(), title: String::new() });
        board.columns.push(Column { id: "ideas".into(), title: "Action items".into(), prompt: String::new() });
        let md = render(&board, Format::Markdown);
        assert!(md.contains("*(in: Flaky, slow \"CI\")*") && !md.contains("(in: )"), "{md}");
        assert_eq!(md.matches("## Action items").count(), 1, "{md}");
        assert!(md.contains("## Agreed action items"), "{md}");
        assert!(render(&board, Format::Html).contains("<h2>Agreed action items</h2>"));
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name(&board(false), Format::Csv), "sprint-42-retro.csv");
        assert_eq!(Format::parse("md"), Some(Format::Markdown));
        assert_eq!(Format::parse("pdf"), None);
    }
}
