//! Teams and their ledger (issue 14): a retro's actions reach the team's ledger at Done, the next
//! retro reviews them, what stays open is carried; the ledger's rules (status and reason only,
//! along the allowed moves) hold against raw writes; two retros finishing at once both land;
//! a status changed offline merges on reconnect and survives `kill -9`; and the API answers
//! unknown teams, wrong keys, bad names and full ledgers with clear errors.

use automerge::ROOT;
use automerge::transaction::Transactable;
use hindsight_shared::api::TeamChange;
use hindsight_shared::ledger::{Ledger, Status};
use hindsight_shared::schema::{ActionItem, Phase};
use hindsight_tests::http::{self, BoardCreated};
use hindsight_tests::team::{TeamPage, create_team, create_team_board, manage_team, post_team_board};
use hindsight_tests::{Endpoint, Participant, ServerProcess, TestServer, Verdict};

/// Runs a retro of the team from its start to Done: the facilitator reviews the team's open
/// actions as `review` says (by text), then writes `actions`. Returns the board.
async fn run_retro(
    server: &impl Endpoint,
    team: &hindsight_tests::team::TeamCreated,
    title: &str,
    review: &[(&str, Status, &str)],
    actions: &[&str],
) -> anyhow::Result<BoardCreated> {
    let board = create_team_board(&server.http_url(), team.team_id, title).await?;
    let mut fay = Participant::join_as_facilitator(server, &board, "Fay").await?;
    // The board names its team by a tag: a guest of one retro does not get the team's link.
    assert_eq!(fay.board().team, Some(team.team_id.tag().to_string()), "the board belongs to the team");
    for (text, status, reason) in review {
        let id = fay.board().review.values().find(|r| r.text == *text).map(|r| r.id.clone());
        let id = id.unwrap_or_else(|| panic!("`{text}` is not under review in {title}"));
        fay.review(&id, *status, reason).await?;
    }
    if !actions.is_empty() {
        fay.set_phase(Phase::Actions).await?;
        for (n, text) in actions.iter().enumerate() {
            let item = ActionItem {
                id: format!("{title}-{n}").replace(' ', "-"),
                text: (*text).to_owned(),
                owner: "Ada".into(),
                due: "2026-12-15".into(),
                cluster: None,
            };
            fay.put_action(&item).await?;
        }
    }
    fay.set_phase(Phase::Done).await?;
    Ok(board)
}

/// A raw write to a ledger, as a team page could send it.
type Write = Box<dyn FnOnce(&mut automerge::transaction::Transaction<'_>) -> anyhow::Result<()>>;

/// The map at `key` in `obj`.
fn map(tx: &automerge::transaction::Transaction<'_>, obj: automerge::ObjId, key: &str) -> automerge::ObjId {
    use automerge::ReadDoc;
    tx.get(obj, key).ok().flatten().map(|(_, id)| id).unwrap_or_else(|| panic!("no map at `{key}`"))
}

/// Puts `value` at `field` of action `id`.
fn put_on_action(id: &str, field: &'static str, value: automerge::ScalarValue) -> Write {
    let id = id.to_owned();
    Box::new(move |tx| {
        let actions = map(tx, ROOT, "actions");
        let action = map(tx, actions, &id);
        tx.put(action, field, value)?;
        Ok(())
    })
}

fn status_of(ledger: &Ledger, text: &str) -> Option<(Status, i64)> {
    ledger.actions.values().find(|a| a.text == text).map(|a| (a.status, a.carried))
}

#[tokio::test]
async fn open_actions_are_reviewed_by_the_next_retro_and_carried_until_done() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Platform").await?;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    assert_eq!(page.ledger().name, "Platform");

    // Retro 1: nothing to review, so it starts in Write; its three actions reach the ledger.
    let first = create_team_board(&server.http_url(), team.team_id, "Sprint 1").await?;
    let fay = Participant::join_as_facilitator(&server, &first, "Fay").await?;
    assert_eq!(fay.board().phase, Phase::Write, "a team with no open actions starts in Write");
    assert!(fay.board().review.is_empty());
    drop(fay);
    // (The board above is a retro that never finishes; the next ones do.)
    run_retro(&server, &team, "Sprint 2", &[], &["Fix the flaky test", "Write the runbook", "Rotate the keys"]).await?;
    page.pump_until("retro 2's actions in the ledger", |l| l.actions.len() == 3).await?;
    for text in ["Fix the flaky test", "Write the runbook", "Rotate the keys"] {
        assert_eq!(status_of(&page.ledger(), text), Some((Status::Open, 0)), "{text}");
    }

    // Retro 3 reviews all three: one done, one dropped, one still open.
    let third = create_team_board(&server.http_url(), team.team_id, "Sprint 3").await?;
    let mut fay = Participant::join_as_facilitator(&server, &third, "Fay").await?;
    assert_eq!(fay.board().phase, Phase::Review, "a team with open actions starts in Review");
    assert_eq!(fay.board().review.len(), 3);
    let id = |fay: &Participant, text: &str| fay.board().review.values().find(|r| r.text == text).unwrap().id.clone();
    let (flaky, runbook) = (id(&fay, "Fix the flaky test"), id(&fay, "Write the runbook"));
    fay.review(&flaky, Status::Done, "").await?;
    fay.review(&runbook, Status::Dropped, "the service was retired").await?;
    fay.set_phase(Phase::Write).await?;
    page.pump_until("the review in the ledger", |l| {
        status_of(l, "Fix the flaky test").is_some_and(|(s, _)| s == Status::Done)
            && status_of(l, "Write the runbook").is_some_and(|(s, _)| s == Status::Dropped)
    })
    .await?;
    page.pump_until("done_at stamped", |l| l.actions.values().any(|a| a.done_at.is_some())).await?;
    assert_eq!(page.action("Write the runbook").reason, "the service was retired");
    fay.set_phase(Phase::Done).await?;
    page.pump_until("carried once", |l| status_of(l, "Rotate the keys") == Some((Status::Open, 1))).await?;
    assert_eq!(status_of(&page.ledger(), "Fix the flaky test"), Some((Status::Done, 0)));

    // Retro 4 reviews only what is still open, and shows it was carried once.
    let fourth = run_retro(&server, &team, "Sprint 4", &[], &[]).await?;
    let fay = Participant::join(&server, fourth.board_id, "Late").await?;
    let review: Vec<_> = fay.board().review.into_values().collect();
    assert_eq!(review.len(), 1, "{review:?}");
    assert_eq!((review[0].text.as_str(), review[0].carried), ("Rotate the keys", 1));
    page.pump_until("carried twice", |l| status_of(l, "Rotate the keys") == Some((Status::Open, 2))).await?;
    let ledger = page.ledger();
    assert_eq!(ledger.retros.len(), 4, "every retro of the team is listed");
    assert_eq!(ledger.retros.values().filter(|r| r.done_at.is_some()).count(), 3);

    // The exports: one row per action, with its status, carried count and reason.
    let base = server.http_url();
    let csv = http::get(&format!("{base}{}", hindsight_shared::api::team_export(team.team_id, "csv"))).await?;
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let rows: Vec<String> = csv.text().lines().map(str::to_owned).collect();
    assert_eq!(rows.len(), 4, "a header and three actions: {rows:#?}");
    assert!(
        rows.iter().any(|r| r.starts_with("open,Rotate the keys,Ada,2026-12-15,") && r.contains(",2,")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|r| r.starts_with("dropped,Write the runbook") && r.ends_with("the service was retired")));
    let md = http::get(&format!("{base}{}", hindsight_shared::api::team_export(team.team_id, "md"))).await?;
    assert!(md.text().starts_with("# Platform: action items"), "{}", md.text());
    assert!(md.text().contains("| done | Fix the flaky test | Ada | 2026-12-15 | 0 | Sprint 2 |"), "{}", md.text());
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn two_retros_finishing_at_once_both_reach_the_ledger() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Twins").await?;
    let mut facilitators = Vec::new();
    for (title, text) in [("Left", "Left action"), ("Right", "Right action")] {
        let board = create_team_board(&server.http_url(), team.team_id, title).await?;
        let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
        fay.set_phase(Phase::Actions).await?;
        let item =
            ActionItem { id: "a".into(), text: text.into(), owner: String::new(), due: String::new(), cluster: None };
        fay.put_action(&item).await?;
        facilitators.push(fay);
    }
    let [mut left, mut right] = <[Participant; 2]>::try_from(facilitators).ok().unwrap();
    let (a, b) = tokio::join!(left.set_phase(Phase::Done), right.set_phase(Phase::Done));
    a?;
    b?;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("both retros' actions", |l| l.actions.len() == 2).await?;
    let ledger = page.ledger();
    assert!(status_of(&ledger, "Left action").is_some() && status_of(&ledger, "Right action").is_some());
    assert_eq!(ledger.actions.keys().collect::<std::collections::HashSet<_>>().len(), 2, "same item id, two keys");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_team_page_may_change_a_status_and_nothing_else() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Rules").await?;
    run_retro(&server, &team, "Sprint", &[], &["Ship it"]).await?;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("the action", |l| l.actions.len() == 1).await?;
    let id = page.action("Ship it").id;
    let forbidden: Vec<(&str, Write)> = vec![
        ("its text", put_on_action(&id, "text", "Ship nothing".into())),
        ("done_at", put_on_action(&id, "done_at", 1_i64.into())),
        ("carried", put_on_action(&id, "carried", 7_i64.into())),
        ("an unknown status", put_on_action(&id, "status", "finished".into())),
        (
            "a new action",
            Box::new(|tx| {
                let actions = map(tx, ROOT, "actions");
                tx.put_object(actions, "mine", automerge::ObjType::Map)?;
                Ok(())
            }),
        ),
        (
            "the team's name",
            Box::new(|tx| {
                tx.put(ROOT, "name", "Ours now")?;
                Ok(())
            }),
        ),
        (
            "a retro",
            Box::new(|tx| {
                let retros = map(tx, ROOT, "retros");
                tx.put_object(retros, "x", automerge::ObjType::Map)?;
                Ok(())
            }),
        ),
        ("an action deleted", {
            let id = id.clone();
            Box::new(move |tx| {
                let actions = map(tx, ROOT, "actions");
                tx.delete(actions, id.as_str())?;
                Ok(())
            })
        }),
    ];
    for (what, write) in forbidden {
        let verdict = page.raw(write).await?;
        assert!(verdict.is_refused(), "writing {what} on the team page: {verdict:?}");
    }
    assert_eq!(page.action("Ship it").text, "Ship it");

    // Done, then dropped without reopening: refused; reopened, then dropped: accepted.
    assert_eq!(page.set_status("Ship it", Status::Done, "").await?, Verdict::Accepted);
    page.pump_until("done_at stamped by the server", |l| l.actions.values().all(|a| a.done_at.is_some())).await?;
    let skipped = page.set_status("Ship it", Status::Dropped, "changed our minds").await?;
    assert!(matches!(&skipped, Verdict::Refused(r) if r.contains("reopened")), "{skipped:?}");
    assert_eq!(page.set_status("Ship it", Status::Open, "").await?, Verdict::Accepted);
    page.pump_until("done_at cleared on reopening", |l| l.actions.values().all(|a| a.done_at.is_none())).await?;
    assert_eq!(page.set_status("Ship it", Status::Dropped, "changed our minds").await?, Verdict::Accepted);
    let long = "x".repeat(hindsight_shared::ledger::MAX_REASON_CHARS + 1);
    let verdict = page.raw(put_on_action(&id, "reason", long.into())).await?;
    assert!(verdict.is_refused(), "an oversized reason: {verdict:?}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_board_keeps_its_team_and_reviews_only_in_review() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Review rules").await?;
    run_retro(&server, &team, "Sprint 1", &[], &["Keep going"]).await?;
    let board = create_team_board(&server.http_url(), team.team_id, "Sprint 2").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut ada = Participant::join(&server, board.board_id, "Ada").await?;
    let id = fay.board().review.keys().next().cloned().expect("one action to review");
    let other = create_team(&server.http_url(), "Other team").await?;
    let verdict = ada
        .raw_board_change(|tx| {
            tx.put(ROOT, "team", other.team_id.to_string())?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "a board joined to a second team: {verdict:?}");
    let verdict = ada
        .raw_board_change(|tx| {
            tx.put(ROOT, "team", automerge::ScalarValue::Null)?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "a board taken out of its team: {verdict:?}");
    let id2 = id.clone();
    let verdict = ada
        .raw_board_change(move |tx| {
            let review = map(tx, ROOT, "review");
            let item = map(tx, review, &id2);
            tx.put(item, "status", "forgotten")?;
            Ok(())
        })
        .await?;
    assert!(verdict.is_refused(), "an unknown status: {verdict:?}");
    ada.review(&id, Status::Doing, "").await?;
    fay.set_phase(Phase::Write).await?;
    let late = ada.send_board_change(|tx| Ok(hindsight_shared::edit::set_review(tx, &id, Status::Done, "")?)).await?;
    assert!(ada.verdict(late).await?.is_refused(), "reviewing after Review");
    let back = fay.send_board_change(|tx| Ok(hindsight_shared::edit::set_phase(tx, Phase::Review)?)).await?;
    assert!(fay.verdict(back).await?.is_refused(), "going back to Review");
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("the review in the ledger", |l| status_of(l, "Keep going") == Some((Status::Doing, 0))).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_team_api_answers_bad_requests_clearly() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let base = server.http_url();
    let unknown = hindsight_shared::ids::DocumentId::random().to_string();
    for (what, response) in [
        ("a retro of an unknown team", post_team_board(&base, &unknown, "Sprint", "start-stop-continue").await?),
        ("an unknown team's export", http::get(&format!("{base}/api/teams/{unknown}/export?format=csv")).await?),
        ("an unknown team's page", http::get(&format!("{base}/t/{unknown}")).await?),
        ("a board id as a team", {
            let board = server.create_board("Not a team", "mad-sad-glad").await;
            post_team_board(&base, &board.board_id.to_string(), "Sprint", "start-stop-continue").await?
        }),
    ] {
        assert_eq!(response.status, 404, "{what}: {}", response.text());
    }
    for (name, why) in [("", "blank"), (&"n".repeat(81) as &str, "too long")] {
        let response = http::post_json(&format!("{base}/api/teams"), &serde_json::json!({ "name": name })).await?;
        assert_eq!(response.status, 400, "a {why} team name: {}", response.text());
    }
    let team = create_team(&base, "Keys").await?;
    assert_eq!(http::get(&format!("{base}/t/{}", team.team_id)).await?.status, 200);
    let board = create_team_board(&base, team.team_id, "Sprint 1").await?;
    let rename = || TeamChange::Rename { name: "Keyed".into() };
    let wrong = manage_team(&base, team.team_id, "not-the-key", rename()).await?;
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert!(wrong.text().contains("team key"), "{}", wrong.text());
    assert_eq!(manage_team(&base, team.team_id, &team.team_key, rename()).await?.status, 204);
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("the new name", |l| l.name == "Keyed").await?;
    let remove = TeamChange::RemoveBoard { board_id: board.board_id.to_string() };
    assert_eq!(manage_team(&base, team.team_id, &team.team_key, remove).await?.status, 204);
    page.pump_until("the retro removed", |l| l.retros.is_empty()).await?;
    let export = http::get(&format!("{base}/api/teams/{}/export?format=json", team.team_id)).await?;
    assert_eq!(export.status, 200);
    assert_eq!(export.json::<serde_json::Value>()?["name"], "Keyed");
    assert_eq!(manage_team(&base, team.team_id, &team.team_key, TeamChange::Delete).await?.status, 204);
    let gone = post_team_board(&base, &team.team_id.to_string(), "After", "start-stop-continue").await?;
    assert_eq!(gone.status, 404, "a deleted team: {}", gone.text());
    assert_eq!(http::get(&format!("{base}/t/{}", team.team_id)).await?.status, 404);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_full_ledger_says_so() -> anyhow::Result<()> {
    let server = TestServer::spawn_with(|config| {
        config.max_team_retros = 3;
        config.max_team_actions = 2;
    })
    .await;
    let base = server.http_url();
    let team = create_team(&base, "Busy").await?;
    run_retro(&server, &team, "Sprint 1", &[], &["One", "Two", "Three"]).await?;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("what fits", |l| l.retros.values().any(|r| r.done_at.is_some())).await?;
    let ledger = page.ledger();
    assert_eq!(ledger.actions.len(), 2, "the ledger holds two actions");
    assert_eq!(ledger.retros.values().next().map(|r| r.left_out), Some(1), "the third is counted as left out");
    let full = post_team_board(&base, &team.team_id.to_string(), "Sprint 2", "start-stop-continue").await?;
    assert_eq!(full.status, 409, "{}", full.text());
    assert!(full.text().contains("action items"), "{}", full.text());

    let other = create_team(&base, "Many retros").await?;
    for n in 0..3 {
        create_team_board(&base, other.team_id, &format!("Retro {n}")).await?;
    }
    let full = post_team_board(&base, &other.team_id.to_string(), "One too many", "start-stop-continue").await?;
    assert_eq!(full.status, 409, "{}", full.text());
    assert!(full.text().contains("3 retros"), "{}", full.text());
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_status_changed_offline_merges_on_reconnect_and_survives_kill_9() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let team = create_team(&server.http_url(), "Offline").await?;
    run_retro(&server, &team, "Sprint", &[], &["Offline one", "Online one"]).await?;
    let mut away = TeamPage::open(&server.ws_url(), team.team_id).await?;
    away.pump_until("the actions", |l| l.actions.len() == 2).await?;
    // Away makes a change with no connection to send it on; meanwhile someone else makes one.
    let offline = away.set_status_offline("Offline one", Status::Doing)?;
    let mut here = TeamPage::open(&server.ws_url(), team.team_id).await?;
    here.pump_until("the actions", |l| l.actions.len() == 2).await?;
    assert_eq!(here.set_status("Online one", Status::Done, "").await?, Verdict::Accepted);
    away.reconnect(&server.ws_url()).await?;
    assert_eq!(away.verdict(offline).await?, Verdict::Accepted);
    away.pump_until("both changes", |l| {
        status_of(l, "Offline one") == Some((Status::Doing, 0)) && status_of(l, "Online one") == Some((Status::Done, 0))
    })
    .await?;
    here.pump_until("the stamp", |l| l.actions.values().any(|a| a.done_at.is_some())).await?;

    server.kill9().await?;
    let server = ServerProcess::start(data.path()).await?;
    let after = TeamPage::open(&server.ws_url(), team.team_id).await?;
    let ledger = after.ledger();
    assert_eq!(status_of(&ledger, "Offline one"), Some((Status::Doing, 0)));
    assert_eq!(status_of(&ledger, "Online one"), Some((Status::Done, 0)));
    assert!(after.action("Online one").done_at.is_some(), "done_at survives");
    server.assert_no_panics();
    Ok(())
}

/// A cluster to make: its title, and the notes in it (two or more).
type ClusterPlan<'a> = (&'a str, &'a [&'a str]);

/// Runs a retro of the team whose clusters are `clusters`, with one action addressing the first
/// cluster; the open actions under review are all marked done. Returns the facilitator, at Done,
/// and the first cluster's id.
async fn retro_with_causes(
    server: &TestServer,
    team: &hindsight_tests::team::TeamCreated,
    title: &str,
    clusters: &[ClusterPlan<'_>],
    action: &str,
) -> anyhow::Result<(Participant, String)> {
    let board = create_team_board(&server.http_url(), team.team_id, title).await?;
    let mut fay = Participant::join_as_facilitator(server, &board, "Fay").await?;
    for id in fay.board().review.keys().cloned().collect::<Vec<_>>() {
        fay.review(&id, Status::Done, "").await?;
    }
    fay.set_phase(Phase::Write).await?;
    let mut drafts: Vec<Vec<String>> = Vec::new();
    for (_, notes) in clusters {
        let mut ids = Vec::new();
        for note in *notes {
            ids.push(fay.write("stop", note).await?);
        }
        drafts.push(ids);
    }
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal_all().await?;
    fay.set_phase(Phase::Group).await?;
    let total: usize = clusters.iter().map(|(_, notes)| notes.len()).sum();
    fay.pump_until("the notes published", |p| p.board().notes.len() == total).await?;
    let mut first = String::new();
    for ((name, _), ids) in clusters.iter().zip(&drafts) {
        let notes: Vec<String> = ids.iter().map(|d| fay.note_id(d)).collect();
        let cluster = fay.group(&notes[1], &notes[0]).await?;
        for note in &notes[2..] {
            fay.group(note, &cluster).await?;
        }
        fay.title_cluster(&cluster, name).await?;
        if first.is_empty() {
            first = cluster;
        }
    }
    fay.set_phase(Phase::Actions).await?;
    let item = ActionItem {
        id: "fix".into(),
        text: action.into(),
        owner: "Ada".into(),
        due: String::new(),
        cluster: Some(first.clone()),
    };
    fay.put_action(&item).await?;
    fay.set_phase(Phase::Done).await?;
    Ok((fay, first))
}

#[tokio::test]
async fn a_cause_that_comes_back_after_its_fix_is_offered_confirmed_and_flagged() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Recurring").await?;
    let deploys: ClusterPlan<'_> =
        ("Deploys broke on Friday", &["the deploy pipeline failed again", "rollback took an hour"]);
    let pairing: ClusterPlan<'_> = ("Great pairing sessions", &["pairing with Ada was great", "more mob sessions"]);
    let (first, _) =
        retro_with_causes(&server, &team, "Sprint 1", &[deploys, pairing], "Add a deploy smoke test").await?;
    drop(first);
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("sprint 1's causes", |l| l.causes.len() == 2).await?;

    // Sprint 2 marks the smoke test done in Review; its pipeline cluster is the same cause.
    let failures: ClusterPlan<'_> =
        ("Deployment pipeline failures", &["pipeline failed during deploy", "rollback was slow"]);
    let pager: ClusterPlan<'_> = ("On-call pager fatigue", &["paged three nights in a row", "alerts nobody reads"]);
    let (mut fay, failures_id) =
        retro_with_causes(&server, &team, "Sprint 2", &[failures, pager], "Make rollback one click").await?;
    fay.pump_until("the team's offer", |p| !p.board().recurrences.is_empty()).await?;
    let offers = fay.board().recurrences;
    assert_eq!(offers.len(), 1, "only the pipeline cluster is offered: {offers:?}");
    let offer = offers.get(&failures_id).expect("the pipeline cluster is offered");
    assert_eq!((offer.title.as_str(), offer.retro.as_str()), ("Deploys broke on Friday", "Sprint 1"));
    assert!(offer.after_fix, "its past actions were all done: {offer:?}");
    assert!(!offer.confirmed);

    // Only the facilitator confirms; then the ledger links the two causes.
    let mut ann = Participant::join(&server, fay.board_id(), "Ann").await?;
    let cluster = failures_id.clone();
    let refused =
        ann.send_board_change(move |tx| Ok(hindsight_shared::edit::confirm_recurrence(tx, &cluster)?)).await?;
    assert!(ann.verdict(refused).await?.is_refused(), "a participant confirming");
    let cluster = failures_id.clone();
    let confirmed =
        fay.send_board_change(move |tx| Ok(hindsight_shared::edit::confirm_recurrence(tx, &cluster)?)).await?;
    fay.verdict(confirmed).await?.accepted()?;
    let cluster = failures_id.clone();
    let undone = fay
        .raw_board_change(move |tx| {
            let recurrences = map(tx, ROOT, "recurrences");
            let offer = map(tx, recurrences, &cluster);
            tx.put(offer, "confirmed", false)?;
            Ok(())
        })
        .await?;
    assert!(undone.is_refused(), "a confirmation taken back: {undone:?}");
    page.pump_until("the link", |l| !l.links.is_empty()).await?;
    let ledger = page.ledger();
    let recurring = ledger.recurring();
    assert_eq!(recurring.len(), 1, "{recurring:?}");
    assert_eq!(
        (recurring[0].title, recurring[0].causes.len(), recurring[0].after_fix),
        ("Deploys broke on Friday", 2, true)
    );
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_roti_reaches_the_ledger_when_it_is_shown_and_only_as_a_histogram() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let team = create_team(&server.http_url(), "Rated").await?;
    let board = create_team_board(&server.http_url(), team.team_id, "Sprint").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut people = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        people.push(Participant::join(&server, board.board_id, name).await?);
    }
    fay.set_phase(Phase::Done).await?;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("the retro recorded", |l| l.retros.values().any(|r| r.done_at.is_some())).await?;
    assert!(page.ledger().retros.values().all(|r| r.roti.is_empty()), "nothing before the results are shown");
    for (person, rating) in people.iter_mut().zip([3, 4, 5]) {
        person.pump_until("Done", |p| p.board().phase == Phase::Done).await?;
        person.rate(Some(rating)).await?;
    }
    fay.show_roti().await?;
    page.pump_until("the ROTI in the ledger", |l| l.retros.values().any(|r| !r.roti.is_empty())).await?;
    let ledger = page.ledger();
    let retro = ledger.retros.values().next().expect("the retro");
    assert_eq!(retro.roti_mean(), Some((3, 4.0)));
    assert_eq!(ledger.figures()[0].roti, Some(4.0), "the chart's figure");
    server.shutdown().await;
    Ok(())
}
