//! Postmortem depth (issue 15): the incident's facts and milestones on a board, and its timeline.
//! The template starts with the facts on, any board's facilitator may turn them on; the rules
//! refuse what a client that ignores the UI could write (bad times, times out of order, also when
//! two people's edits disorder them together, bad links, long fields, the wrong role or phase).
//! Timeline events are written on desks and published by the server without an author: nothing
//! in the board's history ties one to its writer.

use automerge::ROOT;
use automerge::transaction::Transactable;
use hindsight_shared::edit;
use hindsight_shared::incident::Milestone;
use hindsight_shared::schema::Phase;
use hindsight_tests::{Participant, SyncPeer, TestServer};

/// The `incident` map of the board a change is made to.
fn incident(tx: &automerge::transaction::Transaction<'_>) -> automerge::ObjId {
    use automerge::ReadDoc;
    tx.get(ROOT, "incident").ok().flatten().map(|(_, id)| id).expect("the board has an incident map")
}

#[tokio::test]
async fn the_incident_s_facts_keep_their_rules() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    assert!(fay.board().incident.on, "the postmortem template starts with the facts on");

    let set = |field: &'static str, value: &'static str| {
        move |tx: &mut automerge::transaction::Transaction<'_>| -> anyhow::Result<()> {
            let obj = incident(tx);
            tx.put(obj, field, value)?;
            Ok(())
        }
    };
    for (field, value) in [
        ("severity", "SEV2"),
        ("impact", "Checkout failed for 12% of EU customers"),
        ("services", "checkout, payments"),
        ("links", "https://tickets.example/INC-42\nhttp://grafana.example/d/checkout"),
        ("zone", "Europe/Berlin"),
        ("started", "2026-11-30T14:02:00+01:00"),
        ("detected", "2026-11-30T13:09:00Z"),
        ("resolved", "2026-11-30T16:40:00+01:00"),
    ] {
        ann.raw_board_change(set(field, value)).await?.accepted()?;
    }
    let facts = ann.board().incident;
    assert_eq!(facts.figures()[0].seconds, Some(7 * 60), "time to detect across two offsets");
    assert_eq!(facts.figures()[3].seconds, Some(158 * 60));

    for (what, field, value) in [
        ("a time without an offset", "mitigated", "2026-11-30T14:30:00"),
        ("a time that is not one", "mitigated", "half past two"),
        ("a milestone before the start", "acknowledged", "2026-11-30T12:00:00Z"),
        ("a milestone after the resolution", "mitigated", "2026-11-30T17:00:00+01:00"),
        ("a link that is not http(s)", "links", "javascript:alert(1)"),
        ("a time zone that is not a name", "zone", "Berlin time please"),
        ("an unknown field", "blame", "Bob"),
        ("a severity too long", "severity", "the worst one we have ever had"),
    ] {
        let verdict = ann.raw_board_change(set(field, value)).await?;
        assert!(verdict.is_refused(), "{what}: {verdict:?}");
    }
    let verdict = ann.raw_board_change(set("on", "yes")).await?;
    assert!(verdict.is_refused(), "a participant turning the facts off or on: {verdict:?}");
    let verdict = ann
        .raw_board_change(|tx| {
            let obj = incident(tx);
            tx.put_object(obj, "extra", automerge::ObjType::Map)?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "an object in the incident: {verdict:?}");
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let verdict = viewer.raw_board_change(set("severity", "SEV5")).await?;
    assert!(verdict.is_refused(), "a viewer: {verdict:?}");
    assert_eq!(ann.board().incident, facts, "nothing refused changed the facts");

    // Two people's edits, each fine alone, disorder the milestones together: one is refused.
    let heads = ann.heads();
    fay.pump_until_heads(&heads).await?;
    let a = ann
        .send_board_change(|tx| Ok(edit::set_incident(tx, Milestone::Resolved.key(), "2026-11-30T14:20:00+01:00")?))
        .await?;
    let b = fay
        .send_board_change(|tx| Ok(edit::set_incident(tx, Milestone::Detected.key(), "2026-11-30T14:30:00+01:00")?))
        .await?;
    let (a, b) = (ann.verdict(a).await?, fay.verdict(b).await?);
    assert!(a.is_refused() != b.is_refused(), "exactly one of two disordering edits is refused: {a:?}, {b:?}");
    assert_eq!(fay.board().incident.misordered(), None);

    // Done: read-only.
    fay.set_phase(Phase::Done).await?;
    ann.pump_until("Done", |p| p.board().phase == Phase::Done).await?;
    let verdict = ann.raw_board_change(set("severity", "SEV1")).await?;
    assert!(verdict.is_refused(), "facts changed at Done: {verdict:?}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn any_board_s_facilitator_may_turn_the_facts_on() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 9", "start-stop-continue").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    assert!(!fay.board().incident.on);
    let early = ann.send_board_change(|tx| Ok(edit::set_incident(tx, "severity", "SEV3")?)).await?;
    assert!(ann.verdict(early).await?.is_refused(), "facts on a board that keeps none");
    fay.raw_board_change(|tx| Ok(edit::show_incident(tx, true)?)).await?.accepted()?;
    ann.pump_until("the facts on", |p| p.board().incident.on).await?;
    ann.raw_board_change(|tx| Ok(edit::set_incident(tx, "severity", "SEV3")?)).await?.accepted()?;
    assert_eq!(fay.board().incident.severity, "");
    fay.pump_until("the severity", |p| p.board().incident.severity == "SEV3").await?;
    server.shutdown().await;
    Ok(())
}

/// Sets a `datetime-local` input the way a person's pick does (a value, then `change`).
async fn pick_time(page: &hindsight_tests::browser::Page, milestone: &str, value: &str) {
    page.wait_for(fantoccini::Locator::Css(&format!("#milestone-{milestone}"))).await;
    page.eval(&format!(
        "(() => {{ const i = document.getElementById('milestone-{milestone}'); i.value = '{value}'; \
         i.dispatchEvent(new Event('change', {{ bubbles: true }})); return true; }})()"
    ))
    .await;
}

#[tokio::test]
async fn in_the_browser_the_milestones_give_the_durations_with_their_definitions() {
    use fantoccini::Locator;
    let server = TestServer::spawn().await;
    let browser = hindsight_tests::browser::Browser::launch().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    fay.wait_for(Locator::Css("#incident")).await;
    fay.wait_for(Locator::Css("#incident-severity")).await.select_by_value("SEV2").await.expect("severity");
    pick_time(&fay, "started", "2026-11-30T14:02").await;
    pick_time(&fay, "detected", "2026-11-30T14:09").await;
    pick_time(&ann, "acknowledged", "2026-11-30T14:15").await;
    pick_time(&ann, "mitigated", "2026-11-30T15:10").await;
    pick_time(&fay, "resolved", "2026-11-30T16:40").await;
    for page in [&fay, &ann] {
        page.wait_for(Locator::XPath("//div[@data-figure='Time to resolve']//strong[normalize-space(.)='2 h 38 min']"))
            .await;
        page.wait_for(Locator::XPath("//div[@data-figure='Time to detect']//strong[normalize-space(.)='7 min']")).await;
        page.wait_for(Locator::XPath("//div[@data-figure='Impact duration']//strong[normalize-space(.)='1 h 08 min']"))
            .await;
    }
    ann.wait_for(Locator::XPath(
        "//summary[@id='incident-summary' and contains(., 'SEV2') and contains(., 'resolved in 2 h 38 min')]",
    ))
    .await;
    // A resolution before the start is refused, and the page says why.
    pick_time(&ann, "resolved", "2026-11-30T13:00").await;
    ann.wait_for(Locator::XPath("//*[contains(., 'the milestones are out of order')]")).await;
    fay.wait_for(Locator::XPath("//div[@data-figure='Time to resolve']//strong[normalize-space(.)='2 h 38 min']"))
        .await;
    let violations = fay.accessibility_violations().await;
    assert!(violations.is_empty(), "the incident's facts: {violations:#?}");
    fay.screenshot("postmortem-incident").await;
}

/// An event of the timeline, as someone writes it on their desk.
fn saw(id: &str, at: &str, text: &str) -> hindsight_shared::timeline::DeskEvent {
    hindsight_shared::timeline::DeskEvent {
        id: id.into(),
        at: at.into(),
        text: text.into(),
        kind: "event".into(),
        source: String::new(),
    }
}

#[tokio::test]
async fn timeline_events_are_written_in_private_and_published_without_an_author() -> anyhow::Result<()> {
    use hindsight_tests::history::operations;
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    let mark = bob.mark();
    let secret = "14:02 I pushed the config that broke checkout";
    let event = saw("e1", "2026-11-30T14:02:00+01:00", secret);
    ann.send_desk_change(|tx| Ok(edit::put_desk_event(tx, &event)?)).await?;
    bob.pump_until("the event on the timeline", |p| p.board().timeline.values().any(|e| e.text == secret)).await?;
    // Starring is anyone's; the text is the server's.
    let id = bob.board().timeline.keys().next().cloned().expect("one event");
    let star_id = id.clone();
    bob.raw_board_change(move |tx| Ok(edit::star_event(tx, &star_id, true)?)).await?.accepted()?;
    let verdict = bob
        .raw_board_change(|tx| {
            let timeline = {
                use automerge::ReadDoc;
                tx.get(ROOT, "timeline")?.map(|(_, id)| id).expect("a timeline")
            };
            let forged = tx.put_object(timeline, "forged", automerge::ObjType::Map)?;
            tx.put(&forged, "text", "Ann broke it")?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "an event written straight on the board: {verdict:?}");
    for (what, bad) in [
        ("a time without an offset", saw("e2", "2026-11-30T14:05:00", "x")),
        (
            "an unknown kind",
            hindsight_shared::timeline::DeskEvent { kind: "gossip".into(), ..saw("e3", "2026-11-30T14:05:00Z", "x") },
        ),
        ("an empty text", saw("e4", "2026-11-30T14:05:00Z", "")),
    ] {
        let verdict = ann
            .raw_desk_change(move |tx| {
                let events = {
                    use automerge::ReadDoc;
                    tx.get(ROOT, "events")?.map(|(_, id)| id).expect("an events map")
                };
                let obj = tx.put_object(events, bad.id.as_str(), automerge::ObjType::Map)?;
                for (field, value) in [
                    ("id", &bad.id),
                    ("at", &bad.at),
                    ("text", &bad.text),
                    ("kind", &bad.kind),
                    ("source", &bad.source),
                ] {
                    tx.put(&obj, field, value.as_str())?;
                }
                Ok(())
            })
            .await?;
        assert!(verdict.is_refused(), "{what}: {verdict:?}");
    }
    // An edit follows; a star stays.
    let edited = saw("e1", "2026-11-30T14:03:00+01:00", "14:03 the config push");
    ann.raw_desk_change(|tx| Ok(edit::put_desk_event(tx, &edited)?)).await?.accepted()?;
    fay.pump_until("the edit", |p| {
        p.board().timeline.get(&id).is_some_and(|e| e.text == "14:03 the config push" && e.starred)
    })
    .await?;

    // Nothing ties the event to Ann: every operation writing an event's fields, but the star,
    // is by an actor that made no participant's change, and Bob never received her desk.
    let writers: std::collections::HashSet<automerge::ActorId> = operations(fay.board_doc())
        .into_iter()
        .filter(|op| op.under(&["timeline"]) && op.path.last().map(String::as_str) != Some("starred"))
        .map(|op| op.actor)
        .collect();
    let ann_desk = ann.desk_doc().get_changes(&[]).into_iter().map(|c| c.actor_id().clone()).collect::<Vec<_>>();
    assert!(writers.iter().all(|w| !ann_desk.contains(w)), "an event written under Ann's desk's actor");
    let bob_made: Vec<automerge::ActorId> = bob.peer().made_changes().iter().map(|m| m.actor.clone()).collect();
    assert!(writers.iter().all(|w| !bob_made.contains(w)));
    assert!(
        !bob.frames_since(mark)
            .iter()
            .any(|f| hindsight_tests::history::frame_changes(f).iter().any(|c| c.actor_id() == &ann_desk[0])),
        "Bob received a change of Ann's desk"
    );
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn in_the_browser_the_timeline_takes_pasted_lines_stars_and_milestones() {
    use fantoccini::Locator;
    let server = TestServer::spawn().await;
    let browser = hindsight_tests::browser::Browser::launch().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    pick_time(&fay, "started", "2026-11-30T14:00").await;
    pick_time(&fay, "resolved", "2026-11-30T16:40").await;
    ann.wait_for(Locator::Css(".timeline-milestone[data-milestone='resolved']")).await;
    // Many lines at once, with a preview of what was understood.
    ann.click(Locator::Css(".paste-events summary")).await;
    ann.wait_for(Locator::Css("#paste-events"))
        .await
        .send_keys("14:02 Error rate alert fires\n14:09 Ada acknowledges the page\nthe coffee machine broke\n14:31 Rollback started")
        .await
        .expect("paste");
    ann.wait_for(Locator::XPath(
        "//p[@id='paste-preview' and contains(., '3 understood') and contains(., 'not understood: the coffee machine broke')]",
    ))
    .await;
    ann.click(Locator::Css("#add-pasted")).await;
    // Everyone sees them, in time order, with the milestones and the gap before the resolution.
    fay.wait_js("document.querySelectorAll('.timeline-event').length === 3").await;
    let texts = fay.eval("Array.from(document.querySelectorAll('.timeline-text')).map(e => e.textContent)").await;
    assert_eq!(texts, serde_json::json!(["Error rate alert fires", "Ada acknowledges the page", "Rollback started"]));
    fay.wait_for(Locator::XPath("//li[@class='timeline-gap' and contains(., '2 h 09 min without an event')]")).await;
    assert!(fay.client().find(Locator::Css(".delete-event")).await.is_err(), "Fay cannot take back Ann's events");
    ann.wait_js("document.querySelectorAll('.delete-event').length === 3").await;
    // A star, for the postmortem.
    fay.click(Locator::XPath(
        "//li[contains(@class,'timeline-event')][.//span[.='Rollback started']]//button[contains(@class,'star')]",
    ))
    .await;
    ann.wait_for(Locator::Css(".timeline-event[data-starred='true']")).await;
    let violations = ann.accessibility_violations().await;
    assert!(violations.is_empty(), "the timeline: {violations:#?}");
    ann.screenshot("postmortem-timeline").await;
}

fn factor(id: &str, text: &str, kind: &str) -> hindsight_shared::factors::Factor {
    hindsight_shared::factors::Factor { id: id.into(), text: text.into(), kind: kind.into(), ..Default::default() }
}

#[tokio::test]
async fn factors_form_a_graph_without_circles_even_when_two_people_link_at_once() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let early = ann.send_board_change(|tx| Ok(edit::put_factor(tx, &factor("f0", "Too early", "trigger"))?)).await?;
    assert!(ann.verdict(early).await?.is_refused(), "factors before grouping");
    fay.set_phase(Phase::Group).await?;
    ann.pump_until("Group", |p| p.board().phase == Phase::Group).await?;
    for f in [
        factor("deploy", "A config push", "trigger"),
        factor("canary", "No canary for config", "contributing"),
        factor("alert", "The error-rate alert", "mitigator"),
    ] {
        ann.raw_board_change(move |tx| Ok(edit::put_factor(tx, &f)?)).await?.accepted()?;
    }
    ann.raw_board_change(|tx| Ok(edit::link_factors(tx, "canary", "deploy", true)?)).await?.accepted()?;
    for (what, write) in [
        (
            "a link to itself",
            Box::new(|tx: &mut automerge::transaction::Transaction<'_>| {
                Ok(edit::link_factors(tx, "deploy", "deploy", true)?)
            }) as Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>) -> anyhow::Result<()>>,
        ),
        ("a link to no factor", Box::new(|tx| Ok(edit::link_factors(tx, "deploy", "ghost", true)?))),
        ("a circle", Box::new(|tx| Ok(edit::link_factors(tx, "deploy", "canary", true)?))),
        ("an unknown kind", Box::new(|tx| Ok(edit::put_factor(tx, &factor("x", "x", "blame"))?))),
        (
            "a factor without a kind",
            Box::new(|tx| {
                let obj = {
                    use automerge::ReadDoc;
                    tx.get(ROOT, "factors")?.map(|(_, id)| id).expect("factors")
                };
                let made = tx.put_object(obj, "y", automerge::ObjType::Map)?;
                tx.put(&made, "id", "y")?;
                tx.put(&made, "text", "y")?;
                Ok(())
            }),
        ),
    ] {
        let verdict = ann.raw_board_change(write).await?;
        assert!(verdict.is_refused(), "{what}: {verdict:?}");
    }
    // Two links, each fine alone, make a circle together (canary → deploy → alert → canary):
    // one of them is refused.
    let heads = ann.heads();
    fay.pump_until_heads(&heads).await?;
    let a = ann.send_board_change(|tx| Ok(edit::link_factors(tx, "deploy", "alert", true)?)).await?;
    let b = fay.send_board_change(|tx| Ok(edit::link_factors(tx, "alert", "canary", true)?)).await?;
    let (a, b) = (ann.verdict(a).await?, fay.verdict(b).await?);
    assert!(a.is_refused() != b.is_refused(), "exactly one of two links that close a circle is refused: {a:?} {b:?}");
    fay.pump_until("the other link", |p| hindsight_shared::factors::links(&p.board()).len() == 2).await?;
    let links = hindsight_shared::factors::links(&fay.board())
        .into_iter()
        .map(|(x, y)| (x.to_owned(), y.to_owned()))
        .collect::<Vec<_>>();
    assert_eq!(
        hindsight_shared::factors::find_cycle(&links.iter().map(|(x, y)| (x.as_str(), y.as_str())).collect::<Vec<_>>()),
        None
    );

    // Coverage: the trigger and the contributing factor need an action or an accepted risk.
    let board_now = fay.board();
    let uncovered: Vec<&str> = hindsight_shared::factors::uncovered(&board_now).iter().map(|f| f.id.as_str()).collect();
    assert_eq!(uncovered, ["canary", "deploy"], "the mitigator needs nothing");
    fay.set_phase(Phase::Actions).await?;
    let item = hindsight_shared::schema::ActionItem {
        id: "a1".into(),
        text: "Canary config pushes".into(),
        owner: "Ann".into(),
        due: String::new(),
        cluster: None,
    };
    fay.put_action(&item).await?;
    fay.raw_board_change(|tx| Ok(edit::address_factor(tx, "a1", Some("canary"))?)).await?.accepted()?;
    fay.raw_board_change(|tx| Ok(edit::set_action_kind(tx, "a1", Some("prevent"))?)).await?.accepted()?;
    let bad = fay.raw_board_change(|tx| Ok(edit::set_action_kind(tx, "a1", Some("blame"))?)).await?;
    assert!(bad.is_refused(), "an unknown action type: {bad:?}");
    let verdict = fay.raw_board_change(|tx| Ok(edit::address_factor(tx, "nope", Some("canary"))?)).await?;
    assert!(verdict.is_refused(), "a factor addressed by no action item: {verdict:?}");
    let mut accepted = fay.board().factors["deploy"].clone();
    accepted.accepted = true;
    fay.raw_board_change(move |tx| Ok(edit::put_factor(tx, &accepted)?)).await?.accepted()?;
    assert!(hindsight_shared::factors::uncovered(&fay.board()).is_empty(), "everything covered");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn in_the_browser_factors_are_drawn_linked_walked_and_covered() {
    use fantoccini::Locator;
    let server = TestServer::spawn().await;
    let browser = hindsight_tests::browser::Browser::launch().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    for phase in ["reveal", "group"] {
        fay.next_phase(phase).await;
    }
    for (text, kind) in
        [("A config push", "trigger"), ("No canary for config", "contributing"), ("The error-rate alert", "mitigator")]
    {
        fay.wait_for(Locator::Css("#factor-text")).await.send_keys(text).await.expect("factor");
        fay.wait_for(Locator::Css("#factor-kind")).await.select_by_value(kind).await.expect("kind");
        fay.click(Locator::Css("#add-factor")).await;
        fay.wait_for(Locator::XPath(&format!("//li[@class='factor'][.//strong[.='{text}']]"))).await;
    }
    let row = |text: &str| format!("//li[@class='factor'][.//strong[.='{text}']]");
    let link = |from: &str, to: &str| {
        let (from, to) = (from.to_owned(), to.to_owned());
        let fay = &fay;
        async move {
            fay.wait_for(Locator::Css("#link-from")).await.select_by_label(&from).await.expect("from");
            fay.wait_for(Locator::Css("#link-to")).await.select_by_label(&to).await.expect("to");
            fay.click(Locator::Css("#add-link")).await;
        }
    };
    link("No canary for config", "A config push").await;
    fay.wait_for(Locator::XPath(&format!("{}//button[contains(., '→ A config push')]", row("No canary for config"))))
        .await;
    link("A config push", "The error-rate alert").await;
    fay.wait_for(Locator::XPath(&format!("{}//button[contains(., '→ The error-rate alert')]", row("A config push"))))
        .await;
    fay.wait_js("document.querySelectorAll('#factor-graph .factor-link').length === 2").await;
    fay.wait_js("document.querySelectorAll('#factor-graph .factor-node').length === 3").await;
    // A circle is refused, and the page says why.
    link("The error-rate alert", "No canary for config").await;
    fay.wait_for(Locator::XPath("//*[contains(., 'factors may not lead in a circle')]")).await;
    fay.wait_js("document.querySelectorAll('#factor-graph .factor-link').length === 2").await;
    // Five whys from the alert walk back to the missing canary.
    fay.click(Locator::XPath(&format!("{}//button[contains(@class,'why')]", row("The error-rate alert")))).await;
    fay.wait_for(Locator::XPath("//ol[@id='whys']/li[3][.='Why? No canary for config']")).await;
    fay.wait_for(Locator::XPath(
        "//div[@id='coverage' and contains(., 'A config push') and contains(., 'No canary for config')]",
    ))
    .await;
    let violations = fay.accessibility_violations().await;
    assert!(violations.is_empty(), "the factors: {violations:#?}");
    fay.screenshot("postmortem-factors").await;
}

/// Alertmanager's documented webhook payload: one firing alert and one resolved.
const ALERTMANAGER: &str = r#"{
  "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
  "status": "firing", "receiver": "hindsight", "groupLabels": {}, "commonLabels": {},
  "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout"},
     "annotations": {"summary": "Checkout error rate above 5%"},
     "startsAt": "2026-11-30T13:09:00.123Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "c4f5b1e0"},
    {"status": "resolved", "labels": {"alertname": "LatencyP99"}, "annotations": {},
     "startsAt": "2026-11-30T13:05:00Z", "endsAt": "2026-11-30T14:40:00Z", "fingerprint": "0a0b0c0d"}
  ]
}"#;

#[tokio::test]
async fn an_alert_webhook_adds_its_alerts_to_the_timeline_and_refuses_the_rest() -> anyhow::Result<()> {
    use hindsight_tests::http;
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let token = hindsight_shared::alerts::token_of_key(&board.facilitator_key);
    let url = format!("{}{}", server.http_url(), hindsight_shared::api::alerts(board.board_id, &token));
    let post = |url: String, body: &'static [u8]| async move { http::post(&url, "application/json", body).await };

    let answer = post(url.clone(), ALERTMANAGER.as_bytes()).await?;
    assert_eq!(answer.status, 202, "{}", answer.text());
    assert_eq!(answer.json::<serde_json::Value>()?["added"], 3);
    ann.pump_until("the alerts on the timeline", |p| p.board().timeline.len() == 3).await?;
    let timeline = ann.board().timeline;
    assert!(timeline.values().all(|e| e.kind == "alert"));
    assert!(
        timeline
            .values()
            .any(|e| e.text == "Checkout error rate above 5%" && e.source == "alertmanager: HighErrorRate")
    );
    // Alertmanager repeats its notifications: the same alerts add nothing.
    let again = post(url.clone(), ALERTMANAGER.as_bytes()).await?;
    assert_eq!(again.json::<serde_json::Value>()?["added"], 0);

    let wrong = format!(
        "{}{}",
        server.http_url(),
        hindsight_shared::api::alerts(board.board_id, "0123456789abcdef0123456789abcdef")
    );
    assert_eq!(post(wrong, ALERTMANAGER.as_bytes()).await?.status, 403, "a wrong token");
    let unknown = format!(
        "{}{}",
        server.http_url(),
        hindsight_shared::api::alerts(hindsight_shared::ids::DocumentId::random(), &token)
    );
    assert_eq!(post(unknown, ALERTMANAGER.as_bytes()).await?.status, 404, "an unknown board");
    let malformed = post(url.clone(), b"{\"alerts\": 5}").await?;
    assert_eq!(malformed.status, 400);
    assert!(malformed.text().contains("no `alerts` list"), "{}", malformed.text());
    let big: &'static [u8] = Box::leak(vec![b' '; hindsight_shared::alerts::MAX_PAYLOAD_BYTES + 10].into_boxed_slice());
    let oversized = post(url.clone(), big).await?;
    assert_eq!(oversized.status, 400, "{}", oversized.text());
    assert!(oversized.text().contains("at most"), "{}", oversized.text());
    // A flood is cut at the board's rate: 20 in a burst, then 60 a minute.
    let mut limited = false;
    for _ in 0..40 {
        let answer = post(url.clone(), ALERTMANAGER.as_bytes()).await?;
        if answer.status == 429 {
            assert!(answer.text().contains("a minute"), "{}", answer.text());
            limited = true;
            break;
        }
        assert_eq!(answer.status, 202);
    }
    assert!(limited, "a flood of alert payloads is rate-limited");
    server.shutdown().await;
    Ok(())
}

/// The facilitator adds an event straight to the board's timeline, and takes a noisy alert off
/// it; nobody else may do either, and nobody edits an event of the board in place.
#[tokio::test]
async fn the_facilitator_adds_events_to_the_board_and_takes_noise_off_it() -> anyhow::Result<()> {
    use hindsight_shared::timeline::Event;
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let token = hindsight_shared::alerts::token_of_key(&board.facilitator_key);
    let url = format!("{}{}", server.http_url(), hindsight_shared::api::alerts(board.board_id, &token));
    let answer = hindsight_tests::http::post(&url, "application/json", ALERTMANAGER.as_bytes()).await?;
    assert_eq!(answer.status, 202, "{}", answer.text());
    fay.pump_until("the alerts", |p| p.board().timeline.len() == 3).await?;
    let noise = fay.board().timeline.values().find(|e| e.source.contains("LatencyP99")).map(|e| e.id.clone());
    let noise = noise.expect("the latency alert");

    let status = Event {
        id: "fay-status-page".into(),
        at: "2026-11-30T14:20:00+01:00".into(),
        text: "Status page updated".into(),
        kind: "communication".into(),
        source: "facilitator".into(),
        starred: true,
    };
    let (made, gone) = (status.clone(), noise.clone());
    let verdict = ann.raw_board_change(move |tx| Ok(edit::publish_event(tx, &made)?)).await?;
    assert!(verdict.is_refused(), "a participant's event straight on the board: {verdict:?}");
    let verdict = ann.raw_board_change(move |tx| Ok(edit::remove_event(tx, &gone)?)).await?;
    assert!(verdict.is_refused(), "a participant removing an alert: {verdict:?}");

    let made = status.clone();
    fay.raw_board_change(move |tx| Ok(edit::publish_event(tx, &made)?)).await?.accepted()?;
    let gone = noise.clone();
    fay.raw_board_change(move |tx| Ok(edit::remove_event(tx, &gone)?)).await?.accepted()?;
    ann.pump_until("Fay's event in, the noise out", |p| {
        let timeline = p.board().timeline;
        timeline.get("fay-status-page") == Some(&status) && !timeline.contains_key(&noise) && timeline.len() == 3
    })
    .await?;

    // A participant's event the facilitator takes off stays off, whatever its desk does next.
    let seen = saw("e1", "2026-11-30T14:03:00+01:00", "I refreshed the dashboard twice");
    ann.send_desk_change(|tx| Ok(edit::put_desk_event(tx, &seen)?)).await?;
    fay.pump_until("Ann's event", |p| p.board().timeline.len() == 4).await?;
    let hers = fay.board().timeline.values().find(|e| e.text == seen.text).map(|e| e.id.clone()).expect("her event");
    let gone = hers.clone();
    fay.raw_board_change(move |tx| Ok(edit::remove_event(tx, &gone)?)).await?.accepted()?;
    let edited = saw("e1", "2026-11-30T14:04:00+01:00", "I refreshed the dashboard three times");
    ann.raw_desk_change(|tx| Ok(edit::put_desk_event(tx, &edited)?)).await?.accepted()?;
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    // A viewer has nothing to acknowledge: this waits until it holds the server's heads.
    viewer.wait_acknowledged().await?;
    assert!(!viewer.board().timeline.contains_key(&hers), "a removed event came back with its desk's edit");
    assert_eq!(viewer.board().timeline.len(), 3);

    let bad = Event { id: "fay-bad".into(), kind: "rumour".into(), ..status.clone() };
    let verdict = fay.raw_board_change(move |tx| Ok(edit::publish_event(tx, &bad)?)).await?;
    assert!(verdict.is_refused(), "an unknown kind: {verdict:?}");
    let verdict = fay
        .raw_board_change(|tx| {
            let obj = {
                use automerge::ReadDoc;
                let timeline = tx.get(ROOT, "timeline")?.map(|(_, id)| id).expect("a timeline");
                tx.get(&timeline, "fay-status-page")?.map(|(_, id)| id).expect("the event")
            };
            tx.put(&obj, "text", "Status page updated late")?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "an event of the board edited in place: {verdict:?}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn timeline_events_written_offline_merge_on_reconnect_and_stars_made_at_once_both_hold() -> anyhow::Result<()> {
    use hindsight_tests::ChangeOptions;
    let server = TestServer::spawn().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ann = Participant::join(&server, board.board_id, "Ann").await?;
    let mut bob = Participant::join(&server, board.board_id, "Bob").await?;
    // Ann writes on a train: the change waits in her replica.
    let desk = ann.desk_id();
    let offline = saw("o1", "2026-11-30T14:05:00+01:00", "Saw the dashboard go red");
    ann.peer().commit_local(desk, &ChangeOptions { fresh_actor: false, ..ChangeOptions::default() }, |tx| {
        Ok(edit::put_desk_event(tx, &offline)?)
    })?;
    let online = saw("b1", "2026-11-30T14:06:00+01:00", "Paged the on-call");
    bob.raw_desk_change(|tx| Ok(edit::put_desk_event(tx, &online)?)).await?.accepted()?;
    fay.pump_until("Bob's event", |p| p.board().timeline.len() == 1).await?;
    ann.reconnect(&server.ws_url()).await?;
    ann.wait_acknowledged().await?;
    fay.pump_until("both events", |p| p.board().timeline.len() == 2).await?;
    // Two stars at once, on two events: both hold.
    let heads = fay.heads();
    ann.pump_until_heads(&heads).await?;
    let ids: Vec<String> = fay.board().timeline.keys().cloned().collect();
    let (first, second) = (ids[0].clone(), ids[1].clone());
    let a = ann.send_board_change(move |tx| Ok(edit::star_event(tx, &first, true)?)).await?;
    let b = fay.send_board_change(move |tx| Ok(edit::star_event(tx, &second, true)?)).await?;
    ann.verdict(a).await?.accepted()?;
    fay.verdict(b).await?.accepted()?;
    fay.pump_until("both stars", |p| p.board().timeline.values().all(|e| e.starred)).await?;
    server.shutdown().await;
    Ok(())
}

/// A whole blameless postmortem in two browsers, as a team runs one: the facts and milestones,
/// the timeline (pasted, starred), the lessons, the factors and what led to what, actions that
/// address them, Done, and the document the facilitator files, in both layouts.
#[tokio::test]
async fn in_the_browser_a_postmortem_runs_from_milestones_to_the_filed_document() {
    use fantoccini::Locator;
    let server = TestServer::spawn().await;
    let browser = hindsight_tests::browser::Browser::launch().await;
    let board = server.create_board("Checkout outage", "incident-postmortem").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;

    // The facts and the milestones.
    fay.wait_for(Locator::Css("#incident-severity")).await.select_by_value("SEV2").await.expect("severity");
    let enter = char::from(fantoccini::key::Key::Enter);
    fay.wait_for(Locator::XPath("//input[@aria-label='Impact']"))
        .await
        .send_keys(&format!("Checkout failed for 12% of EU customers{enter}"))
        .await
        .expect("impact");
    pick_time(&fay, "started", "2026-11-30T14:02").await;
    pick_time(&fay, "detected", "2026-11-30T14:09").await;
    pick_time(&ann, "mitigated", "2026-11-30T15:10").await;
    pick_time(&fay, "resolved", "2026-11-30T16:40").await;
    ann.wait_for(Locator::XPath("//div[@data-figure='Time to resolve']//strong[normalize-space(.)='2 h 38 min']"))
        .await;

    // What happened, pasted by Ann; Fay stars what the document keeps.
    ann.click(Locator::Css(".paste-events summary")).await;
    ann.wait_for(Locator::Css("#paste-events"))
        .await
        .send_keys("14:02 Config push to checkout\n14:09 Error-rate alert fires\n14:31 Rollback started")
        .await
        .expect("paste");
    ann.wait_for(Locator::XPath("//p[@id='paste-preview' and starts-with(normalize-space(.), '3 understood')]")).await;
    ann.click(Locator::Css("#add-pasted")).await;
    let star = |text: &str| {
        format!("//li[contains(@class,'timeline-event')][.//span[.='{text}']]//button[contains(@class,'star')]")
    };
    for text in ["Config push to checkout", "Rollback started"] {
        fay.click(Locator::XPath(&star(text))).await;
    }
    ann.wait_js("document.querySelectorAll(\".timeline-event[data-starred='true']\").length === 2").await;
    // A duplicate of what the alert webhook will say: Fay takes it off the timeline.
    fay.click(Locator::XPath(
        "//li[contains(@class,'timeline-event')][.//span[.='Error-rate alert fires']]//button[contains(@class,'remove-event')]",
    ))
    .await;
    ann.wait_js("document.querySelectorAll('.timeline-event').length === 2").await;

    // The lessons, written in private and revealed.
    ann.add_note("went-well", "The alert fired within 7 minutes").await;
    ann.add_note("went-wrong", "Rollback needed two approvals").await;
    fay.add_note("surprised", "The config service has no owner").await;
    fay.wait_person_status("Ann", "2 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    ann.wait_for_note("surprised", "The config service has no owner").await;
    fay.next_phase("group").await;

    // The factors: what led to what, the trigger pinned to its moment on the timeline.
    for (text, kind) in [("A config push", "trigger"), ("No canary for config", "contributing")] {
        fay.wait_for(Locator::Css("#factor-text")).await.send_keys(text).await.expect("factor");
        fay.wait_for(Locator::Css("#factor-kind")).await.select_by_value(kind).await.expect("kind");
        fay.click(Locator::Css("#add-factor")).await;
        ann.wait_for(Locator::XPath(&format!("//li[@class='factor'][.//strong[.='{text}']]"))).await;
    }
    fay.wait_for(Locator::Css("#link-from")).await.select_by_label("No canary for config").await.expect("from");
    fay.wait_for(Locator::Css("#link-to")).await.select_by_label("A config push").await.expect("to");
    fay.click(Locator::Css("#add-link")).await;
    ann.wait_js("document.querySelectorAll('#factor-graph .factor-link').length === 1").await;
    let trigger = "//li[@class='factor'][.//strong[.='A config push']]";
    fay.wait_for(Locator::XPath(&format!("{trigger}//select[contains(@class,'factor-event')]")))
        .await
        .select_by_label("14:02 Config push to checkout")
        .await
        .expect("the trigger's moment");
    ann.wait_js(&format!(
        "(() => {{ const s = document.evaluate(\"{trigger}//select[contains(@class,'factor-event')]\", document, null, \
         XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue; return !!s && s.selectedIndex > 0; }})()"
    ))
    .await;
    ann.wait_for(Locator::XPath(
        "//div[@id='coverage' and contains(., 'A config push') and contains(., 'No canary for config')]",
    ))
    .await;

    // Actions address the factors; the trigger is an accepted risk; coverage is complete.
    for phase in ["vote", "discuss", "actions"] {
        fay.next_phase(phase).await;
    }
    ann.wait_phase("actions").await;
    ann.wait_for(Locator::Css("#action-text")).await.send_keys("Canary config pushes").await.expect("text");
    ann.wait_for(Locator::Css("#action-owner")).await.send_keys("Ann").await.expect("owner");
    ann.click(Locator::Css("#add-action")).await;
    let action = "//li[contains(@class,'action-item')][.//span[normalize-space(.)='Canary config pushes']]";
    ann.wait_for(Locator::XPath(&format!("{action}//select[@class='action-factor']")))
        .await
        .select_by_label("No canary for config")
        .await
        .expect("the factor");
    ann.wait_for(Locator::XPath(&format!("{action}//select[@class='action-kind']")))
        .await
        .select_by_value("prevent")
        .await
        .expect("the type");
    fay.wait_for(Locator::XPath("//div[@id='coverage' and not(contains(., 'No canary'))]")).await;
    fay.click(Locator::XPath(&format!("{trigger}//label[@class='factor-accepted']/input"))).await;
    ann.wait_js("document.getElementById('coverage') === null").await;
    fay.next_phase("done").await;
    ann.wait_phase("done").await;

    // The document, as the facilitator files it: the printable page from the export menu.
    fay.click(Locator::Css("#export")).await;
    let print = fay.wait_for(Locator::Css(".export-print")).await;
    assert_eq!(print.text().await.expect("label"), "Printable postmortem (SRE sections)");
    let href = print.attr("href").await.expect("href").expect("a link");
    let document = browser.open(&format!("{}{href}", server.http_url())).await;
    document.wait_for(Locator::XPath("//article[@class='postmortem']/h2[.='Root causes and trigger']")).await;
    let text = document.eval("document.querySelector('article.postmortem').innerText").await;
    let text = text.as_str().expect("the document's text").to_owned();
    for said in [
        "SEV2 incident. Time to detect 7 min, to mitigate 1 h 08 min, to resolve 2 h 38 min.",
        "Checkout failed for 12% of EU customers",
        "contributing: No canary for config → A config push",
        "(accepted risk)",
        "Config push to checkout",
        "Canary config pushes",
        "prevent",
        "The alert fired within 7 minutes",
        "Rollback needed two approvals",
        "The config service has no owner",
        "Rollback started",
    ] {
        assert!(text.contains(said), "the document lacks {said:?}:\n{text}");
    }
    assert!(!text.contains("Error-rate alert fires"), "an unstarred event in the document's timeline:\n{text}");
    assert!(!text.contains("Ann —") && !text.contains("Fay —"), "the document names a writer:\n{text}");
    document.screenshot("postmortem-document").await;

    // The other layout, and the Markdown to keep in a repository, say the same.
    let url = |layout: &str, format: &str| {
        format!("{}{}", server.http_url(), hindsight_shared::api::export_postmortem(board.board_id, format, layout))
    };
    let cmr = hindsight_tests::http::get(&url("cmr", "md")).await.expect("the C/M/R document");
    let cmr = cmr.text();
    for said in ["## Contributors", "## Mitigators", "## Risks", "## Surprises", "Canary config pushes"] {
        assert!(cmr.contains(said), "the C/M/R document lacks {said:?}:\n{cmr}");
    }
    let unknown = hindsight_tests::http::get(&url("pdf", "md")).await.expect("an answer");
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    assert!(unknown.text().contains("unknown layout"), "{}", unknown.text());
}
