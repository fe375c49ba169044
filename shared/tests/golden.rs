//! Golden files of the postmortem document (issue 15): a fixed postmortem board rendered as
//! Markdown and as a printable HTML page in both layouts, and as versioned JSON, compared with
//! `tests/golden/`; `HINDSIGHT_UPDATE_GOLDEN=1` writes them again after a deliberate change
//! (review the diff).

use hindsight_shared::export::{Format, render, render_as};
use hindsight_shared::postmortem::Layout;
use hindsight_shared::schema::{ActionItem, Board, Column, Note, Phase};
use hindsight_shared::templates;

/// A postmortem board with everything on it: facts, a timeline, factors, actions.
fn postmortem() -> Board {
    let template = templates::find("incident-postmortem").expect("the template");
    let mut board = Board {
        title: "Checkout outage".into(),
        template: template.id.into(),
        phase: Phase::Done,
        columns: template
            .columns
            .iter()
            .map(|c| Column { id: c.id.into(), title: c.title.into(), prompt: c.prompt.into() })
            .collect(),
        ..Board::default()
    };
    board.incident = hindsight_shared::incident::Incident {
        on: true,
        severity: "SEV2".into(),
        impact: "Checkout failed for 12% of EU customers".into(),
        services: "checkout, payments".into(),
        links: "https://tickets.example/INC-42\nhttp://x.example/`evil`".into(),
        zone: "Europe/Berlin".into(),
        started: "2026-11-30T14:02:00+01:00".into(),
        detected: "2026-11-30T14:09:00+01:00".into(),
        acknowledged: "2026-11-30T14:15:00+01:00".into(),
        mitigated: "2026-11-30T15:10:00+01:00".into(),
        resolved: "2026-11-30T16:40:00+01:00".into(),
        ..Default::default()
    };
    for (id, column, text) in [
        ("n1", "went-well", "The alert fired within 7 minutes"),
        ("n2", "went-wrong", "Rollback needed *two* approvals"),
        ("n3", "lucky", "It happened before the evening peak"),
        ("n4", "surprised", "The config service has <no> owner"),
    ] {
        let note = Note {
            id: id.into(),
            column: column.into(),
            text: text.into(),
            created_at: 1,
            cluster: None,
            author: None,
        };
        board.notes.insert(id.into(), note);
    }
    for (id, at, text, starred) in [
        ("e1", "2026-11-30T14:02:00+01:00", "Config push to checkout", true),
        ("e2", "2026-11-30T14:09:00+01:00", "Error-rate alert fires", true),
        ("e3", "2026-11-30T14:20:00+01:00", "Coffee", false),
    ] {
        let event = hindsight_shared::timeline::Event {
            id: id.into(),
            at: at.into(),
            text: text.into(),
            kind: "event".into(),
            source: String::new(),
            starred,
        };
        board.timeline.insert(id.into(), event);
    }
    for (id, text, kind, accepted, event) in [
        ("deploy", "A config push", "trigger", false, Some("e1")),
        ("canary", "No canary for config", "contributing", false, None),
        ("alert", "The error-rate alert", "mitigator", false, Some("e2")),
        ("peak", "Peak traffic", "risk", true, None),
    ] {
        let factor = hindsight_shared::factors::Factor {
            id: id.into(),
            text: text.into(),
            kind: kind.into(),
            accepted,
            event: event.map(Into::into),
            ..Default::default()
        };
        board.factors.insert(id.into(), factor);
    }
    board.causal.insert(hindsight_shared::factors::link_key("canary", "deploy"), true);
    board.causal.insert(hindsight_shared::factors::link_key("deploy", "alert"), true);
    board.action_items.insert(
        "a1".into(),
        ActionItem {
            id: "a1".into(),
            text: "Canary config pushes".into(),
            owner: "Ann".into(),
            due: "2026-12-15".into(),
            cluster: None,
        },
    );
    board.addresses.insert("a1".into(), "canary".into());
    board.action_kinds.insert("a1".into(), "prevent".into());
    board
}

/// Compares `got` with the golden file `name` (`shared/tests/golden/`); with
/// `HINDSIGHT_UPDATE_GOLDEN=1`, writes it instead.
fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("HINDSIGHT_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("the golden folder");
        std::fs::write(&path, got).expect("write the golden file");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (HINDSIGHT_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(got, want, "{name} differs from its golden file");
}

#[test]
fn the_postmortem_document_matches_its_golden_files() {
    let pm = postmortem();
    golden("postmortem.md", &render(&pm, Format::Markdown));
    golden("postmortem.json", &render(&pm, Format::Json));
    golden("postmortem.html", &render(&pm, Format::Html));
    golden("postmortem-cmr.md", &render_as(&pm, Format::Markdown, Layout::Cmr));
    golden("postmortem-cmr.html", &render_as(&pm, Format::Html, Layout::Cmr));
    let md = render(&pm, Format::Markdown);
    for section in [
        "## Summary",
        "## Impact",
        "## Root causes and trigger",
        "## Detection",
        "## Resolution",
        "## Contributing factors",
        "## Action items",
        "## Lessons learned",
        "## Timeline",
    ] {
        assert!(md.contains(section), "{section}");
    }
    let mut plain = postmortem();
    plain.incident.on = false;
    assert!(!render(&plain, Format::Markdown).contains("## Summary"), "only a board with the incident's facts");

    // Both layouts say the same things in both formats, and neither lets the board's text out
    // as markup or a link.
    for layout in Layout::ALL {
        let html = render_as(&pm, Format::Html, layout);
        let md = render_as(&pm, Format::Markdown, layout);
        for said in ["Canary config pushes", "No canary for config", "Config push to checkout", "SEV2"] {
            assert!(html.contains(said) && md.contains(said), "{layout:?} drops {said:?}");
        }
        assert!(html.contains("The config service has &lt;no&gt; owner") && !html.contains("<no>"), "{layout:?}");
        assert!(!html.contains("<a ") && html.contains("<code>https://tickets.example/INC-42</code>"), "{layout:?}");
        assert!(!md.contains("<no>") && md.contains("`https://tickets.example/INC-42`"), "{layout:?}");
    }
    let cmr = render_as(&pm, Format::Markdown, Layout::Cmr);
    for section in ["## Contributors", "## Mitigators", "## Risks", "## Surprises"] {
        assert!(cmr.contains(section), "{section}");
    }
}
