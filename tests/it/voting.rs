//! Dot-voting under pressure: eight participants vote on the same items at once, each firing
//! several changes without waiting, meant to overspend the budget and the per-item maximum, and
//! one of them from two connections racing each other. However the races fall, every desk the
//! server holds ends within the budget and the maximum, only on real items, and the totals the
//! server writes when voting closes are exactly the sum of the desks.

use std::collections::BTreeMap;

use automerge::ChangeHash;
use hindsight_shared::edit;
use hindsight_shared::schema::{Desk, Phase};
use hindsight_tests::{Participant, TestServer, Verdict};

const VOTERS: usize = 8;
const BUDGET: i64 = 4;
const MAX_PER_ITEM: i64 = 2;

/// Sends the votes one after another without waiting for any verdict, then waits for them all
/// and for the desk to be in step with the server. Returns the verdicts.
async fn vote_at_once(mut who: Participant, votes: Vec<(String, i64)>) -> anyhow::Result<(Participant, Vec<Verdict>)> {
    let mut sent: Vec<ChangeHash> = Vec::new();
    for (item, dots) in votes {
        sent.push(who.send_desk_change(|tx| Ok(edit::set_votes(tx, &item, dots)?)).await?);
    }
    let mut verdicts = Vec::new();
    for hash in sent {
        verdicts.push(who.verdict(hash).await?);
    }
    who.wait_acknowledged().await?;
    Ok((who, verdicts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_votes_never_break_the_budget_and_the_totals_add_up() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Voting", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let mut voters = vec![];
    for n in 1..VOTERS {
        let mut voter = Participant::join(&server, board.board_id, &format!("Voter {n}")).await?;
        voter.write(["mad", "sad", "glad"][n % 3], &format!("Note {n}")).await?;
        voters.push(voter);
    }
    fay.set_settings(|s| {
        s.vote_budget = BUDGET;
        s.max_votes_per_item = MAX_PER_ITEM;
    })
    .await?;
    fay.set_phase(Phase::Group).await?;
    fay.pump_until("every note", |p| p.board().notes.len() == VOTERS - 1).await?;
    let ids: Vec<String> = fay.board().notes.into_keys().collect();
    fay.group(&ids[0], &ids[1]).await?;
    fay.set_phase(Phase::Vote).await?;
    let items: Vec<String> = fay.board().vote_items().iter().map(|item| item.id().to_owned()).collect();
    assert_eq!(items.len(), VOTERS - 2, "a cluster of two and the lone notes");
    voters.push(fay);

    // Every voter, and a second connection of the first, fires at once. Each plan spends the
    // whole budget, then overspends it or the maximum on one item, then goes on regardless.
    let second = Participant::connect(&server.ws_url(), voters[0].identity().clone()).await?;
    let plan = |n: usize| -> Vec<(String, i64)> {
        let item = |k: usize| items[(n + k) % items.len()].clone();
        let overspend = if n.is_multiple_of(2) { (item(0), MAX_PER_ITEM + 1) } else { (item(2), 1) };
        vec![(item(0), 2), (item(1), 2), overspend, (item(3), 1)]
    };
    let mut runs = Vec::new();
    for (n, voter) in voters.into_iter().enumerate() {
        runs.push(tokio::spawn(vote_at_once(voter, plan(n))));
    }
    runs.push(tokio::spawn(vote_at_once(second, vec![(items[4].clone(), 2), (items[5].clone(), 1)])));
    let mut voters = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for run in runs {
        let (voter, verdicts) = run.await??;
        accepted += verdicts.iter().filter(|v| **v == Verdict::Accepted).count();
        refused += verdicts.iter().filter(|v| v.is_refused()).count();
        voters.push(voter);
    }
    assert!(accepted >= VOTERS, "every voter placed some dots ({accepted} accepted)");
    assert!(refused >= VOTERS, "every plan overspent somewhere ({refused} refused)");

    // The desks as the server holds them, through fresh connections.
    let mut expected: BTreeMap<String, i64> = items.iter().map(|item| (item.clone(), 0)).collect();
    let second = voters.pop().expect("the second connection ran last");
    assert_eq!(second.id(), voters[0].id());
    let mut fay = voters.pop().expect("Fay ran before it");
    voters.push(Participant::connect(&server.ws_url(), fay.identity().clone()).await?);
    let board_now = fay.board();
    for voter in &voters {
        let desk: Desk = Participant::connect(&server.ws_url(), voter.identity().clone()).await?.desk();
        assert!(desk.votes_cast() <= BUDGET, "{}: {:?} overspends", voter.name(), desk.votes);
        for (item, dots) in &desk.votes {
            assert!((1..=MAX_PER_ITEM).contains(dots), "{}: {dots} dots on one item", voter.name());
            assert!(board_now.is_vote_item(item), "{}: a vote for {item}, which is no item", voter.name());
            *expected.get_mut(item).expect("a vote item") += dots;
        }
    }
    assert!(expected.values().sum::<i64>() > 0);

    fay.set_phase(Phase::Discuss).await?;
    fay.pump_until("the totals", |p| !p.board().vote_totals.is_empty()).await?;
    assert_eq!(fay.board().vote_totals, expected, "the totals are the sum of the desks");
    server.shutdown().await;
    Ok(())
}
