//! Durability: what the server acknowledged is back after a graceful stop of the process (SIGTERM,
//! with a `going away` close for every client), after a SIGKILL, and after the board left memory:
//! drafts on desks, published notes, the participants and the facilitator role. A participant who
//! comes back with the desk id they kept is still themselves.

use hindsight_shared::ids::DocumentId;
use hindsight_shared::schema::Phase;
use hindsight_tests::{Endpoint, Participant, ServerProcess, SyncPeer, TestServer, http};

const DRAFTS: [(&str, &str); 4] = [
    ("liked", "Pairing on the parser"),
    ("learned", "SQLite WAL needs a checkpoint"),
    ("lacked", "A staging environment"),
    ("longed-for", "Fewer meetings"),
];

/// A retro under way on a 4Ls board: Ann wrote [`DRAFTS`], Fay moved to Reveal and revealed
/// `liked`, so one note is published and three wait on Ann's desk. Everything is acknowledged.
pub(crate) struct Retro {
    board: DocumentId,
    fay: Participant,
    ann: Participant,
}

pub(crate) async fn retro_under_way(
    server: &impl Endpoint,
    board: &hindsight_tests::BoardCreated,
) -> anyhow::Result<Retro> {
    let mut fay = Participant::join_as_facilitator(server, board, "Fay").await?;
    let mut ann = Participant::join(server, board.board_id, "Ann").await?;
    for (column, text) in DRAFTS {
        ann.write(column, text).await?;
    }
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal("liked").await?;
    ann.pump_until("the liked note", |p| p.board().notes.len() == 1).await?;
    fay.pump_until_heads(&ann.heads()).await?;
    ann.wait_acknowledged().await?;
    Ok(Retro { board: board.board_id, fay, ann })
}

/// Checks, against a server that restarted, that the retro is whole: a viewer gets the same board,
/// Ann and Fay come back as themselves (Ann's drafts on her desk, Fay still facilitating, and the
/// server still knows Ann's desk: revealing `learned` publishes her note), and a newcomer sees
/// everyone on the roster.
pub(crate) async fn assert_retro_is_back(server: &impl Endpoint, before: &Retro) -> anyhow::Result<()> {
    let mut viewer = SyncPeer::open(&server.ws_url(), before.board).await?;
    viewer.pump_until_heads(&before.fay.heads()).await?;
    assert_eq!(viewer.board(), before.fay.board());
    assert_eq!(viewer.board().notes.values().map(|n| n.text.as_str()).collect::<Vec<_>>(), ["Pairing on the parser"]);
    assert_eq!(viewer.board().facilitator.as_deref(), Some(before.fay.id()));

    let mut ann = Participant::connect(&server.ws_url(), before.ann.identity().clone()).await?;
    assert_eq!(ann.desk_heads(), before.ann.desk_heads(), "Ann's desk, as she left it");
    assert_eq!(ann.desk().drafts.len(), DRAFTS.len());
    let mut fay = Participant::connect(&server.ws_url(), before.fay.identity().clone()).await?;
    fay.reveal("learned").await?;
    ann.pump_until("the learned note", |p| {
        p.board().notes.values().any(|n| n.column == "learned" && n.text == "SQLite WAL needs a checkpoint")
    })
    .await?;

    let mut newcomer = Participant::join(server, before.board, "Neo").await?;
    newcomer.pump_until("a roster with all three", |p| p.roster().is_some_and(|r| r.len() == 3)).await?;
    let roster = newcomer.roster().expect("a roster");
    assert!(roster.iter().any(|p| p.name == "Fay" && p.facilitator && p.id == fay.id()));
    assert!(roster.iter().any(|p| p.name == "Ann" && !p.facilitator && p.id == ann.id()));
    Ok(())
}

#[tokio::test]
async fn a_retro_survives_a_graceful_restart() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut first = ServerProcess::start(data.path()).await?;
    let board = first.create_board("Quarterly retro", "4ls").await?;
    let mut retro = retro_under_way(&first, &board).await?;

    first.stop().await?;
    let closing = retro.fay.peer().client().expect_close().await?;
    assert_eq!(closing.code, Some(1001), "a client of a server that shuts down is told it is going away: {closing:?}");
    first.assert_no_panics();

    let mut second = ServerProcess::start(data.path()).await?;
    let page = http::get(&format!("{}/b/{}", second.http_url(), board.board_id)).await?;
    assert_eq!(page.status, 200, "the board's page after the restart");
    assert_retro_is_back(&second, &retro).await?;

    second.stop().await?;
    second.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn an_acknowledged_retro_survives_sigkill() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let mut first = ServerProcess::start(data.path()).await?;
    let board = first.create_board("Quarterly retro", "4ls").await?;
    let retro = retro_under_way(&first, &board).await?;

    // No shutdown, no flush: the server promised all of it was on disk when it acknowledged it.
    first.kill9().await?;
    first.assert_no_panics();

    let mut second = ServerProcess::start(data.path()).await?;
    assert_retro_is_back(&second, &retro).await?;
    second.stop().await?;
    second.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn a_board_evicted_from_memory_comes_back_whole() -> anyhow::Result<()> {
    // With no idle time a board leaves memory as soon as its last peer does, so each round races
    // a reload against an eviction.
    let server = TestServer::spawn_with(|config| config.board_idle_secs = 0).await;
    let board = server.create_board("Evicted", "sailboat").await;
    let fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let fay_identity = fay.identity().clone();
    let ann = Participant::join(&server, board.board_id, "Ann").await?;
    let ann_identity = ann.identity().clone();
    fay.close().await?;
    ann.close().await?;
    const ROUNDS: usize = 8;
    for round in 0..ROUNDS {
        let mut ann = Participant::connect(&server.ws_url(), ann_identity.clone()).await?;
        assert_eq!(ann.desk().drafts.len(), round, "the drafts of earlier rounds");
        let column = ann.board().columns[round % 4].id.clone();
        ann.write(&column, &format!("round {round}")).await?;
        ann.close().await?;
    }

    // The facilitator comes back as the facilitator, and the server still knows Ann's desk.
    let mut fay = Participant::connect(&server.ws_url(), fay_identity).await?;
    fay.set_phase(Phase::Group).await?;
    fay.pump_until("every draft published", |p| p.board().notes.len() == ROUNDS).await?;
    let texts: std::collections::BTreeSet<String> = fay.board().notes.into_values().map(|n| n.text).collect();
    assert_eq!(texts, (0..ROUNDS).map(|r| format!("round {r}")).collect());
    server.shutdown().await;
    Ok(())
}
