//! Whether the retros work (issue 14): the ROTI (return on time invested, 1 to 5) each
//! participant gives on their desk at Done, shown only as a histogram and only once at least
//! three people rated (k-anonymity). With fewer, nothing is published, and no frame anyone
//! receives carries another person's rating.

use std::collections::BTreeMap;

use automerge::legacy::{Key, OpType};
use automerge::{ChangeHash, ScalarValue};
use hindsight_shared::schema::Phase;
use hindsight_tests::history::{frame_changes, operations};
use hindsight_tests::{Participant, TestServer};

/// A retro at Done: the facilitator and `raters` participants who joined.
async fn retro_at_done(server: &TestServer, raters: usize) -> anyhow::Result<(Participant, Vec<Participant>)> {
    let board = server.create_board("Sprint 12", "mad-sad-glad").await;
    let mut fay = Participant::join_as_facilitator(server, &board, "Fay").await?;
    let mut people = Vec::new();
    for n in 0..raters {
        people.push(Participant::join(server, board.board_id, &format!("Rater {n}")).await?);
    }
    fay.set_phase(Phase::Done).await?;
    for person in &mut people {
        person.pump_until("the retro at Done", |p| p.board().phase == Phase::Done).await?;
    }
    Ok((fay, people))
}

/// Every rating a participant received that is not their own: `roti` values put by any change,
/// in any frame, but their own desk's.
fn others_ratings(person: &Participant) -> Vec<i64> {
    let own: Vec<ChangeHash> = person.desk_doc().get_changes(&[]).iter().map(|c| c.hash()).collect();
    person
        .frames()
        .iter()
        .flat_map(|frame| frame_changes(frame))
        .filter(|change| !own.contains(&change.hash()))
        .flat_map(|change| change.decode().operations)
        .filter_map(|op| match (op.key, op.action) {
            (Key::Map(key), OpType::Put(ScalarValue::Int(rating))) if key == "roti" => Some(rating),
            _ => None,
        })
        .collect()
}

/// What the board's history holds under `roti`, beyond the empty map the server made.
fn published(person: &Participant) -> usize {
    operations(person.board_doc()).iter().filter(|op| op.under(&["roti"]) && op.path.len() > 1).count()
}

#[tokio::test]
async fn with_two_raters_nothing_is_published_and_no_frame_carries_a_rating() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let (mut fay, mut people) = retro_at_done(&server, 2).await?;
    people[0].rate(Some(2)).await?;
    people[1].rate(Some(5)).await?;
    fay.show_roti().await?;
    // The server reacts in the turn that takes the change, before it acknowledges it: once every
    // participant has the facilitator's change, any results would be there too.
    let heads = fay.heads();
    for person in &mut people {
        person.pump_until_heads(&heads).await?;
        assert!(person.board().roti_shown);
    }
    for person in people.iter().chain([&fay]) {
        assert!(person.board().roti.is_empty(), "{}: no results with two ratings", person.name());
        assert_eq!(published(person), 0, "{}: nothing under `roti` in the board's history", person.name());
        assert_eq!(others_ratings(person), Vec::<i64>::new(), "{}: no one else's rating in any frame", person.name());
    }
    // Ratings are closed once the results are asked for.
    let late = people[0].send_desk_change(|tx| Ok(hindsight_shared::edit::set_roti(tx, Some(4))?)).await?;
    assert!(people[0].verdict(late).await?.is_refused(), "no rating after the results were asked for");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn with_three_raters_the_histogram_is_shown_and_nothing_else() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let (mut fay, mut people) = retro_at_done(&server, 3).await?;
    for (person, rating) in people.iter_mut().zip([2, 5, 5]) {
        person.rate(Some(rating)).await?;
    }
    // A rating taken back does not count.
    fay.rate(Some(1)).await?;
    fay.rate(None).await?;
    fay.show_roti().await?;
    let expected: BTreeMap<String, i64> =
        [("1", 0), ("2", 1), ("3", 0), ("4", 0), ("5", 2)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    for person in people.iter_mut() {
        person.pump_until("the ROTI results", |p| !p.board().roti.is_empty()).await?;
        assert_eq!(person.board().roti, expected, "{}", person.name());
        assert_eq!(others_ratings(person), Vec::<i64>::new(), "{}: the histogram only", person.name());
    }
    assert_eq!(fay.board().roti, expected);
    server.shutdown().await;
    Ok(())
}
