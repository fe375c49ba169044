//! Postmortem depth (issue 15): the incident's facts and milestones on a board. The template
//! starts with them on, any board's facilitator may turn them on; the rules refuse what a client
//! that ignores the UI could write (bad times, times out of order, also when two people's edits
//! disorder them together, bad links, long fields, the wrong role or phase).

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
