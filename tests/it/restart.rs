//! Durability: what the server acknowledged is back after a graceful stop of the process (SIGTERM,
//! with a `going away` close for every client), after a SIGKILL, and after the board left memory.

use hindsight_tests::{ServerProcess, SyncPeer, TestServer, http};

const NOTES: [(&str, &str); 4] = [
    ("liked", "Pairing on the parser"),
    ("learned", "SQLite WAL needs a checkpoint"),
    ("lacked", "A staging environment"),
    ("longed-for", "Fewer meetings"),
];

/// Starts a server on `data_dir`, creates a board, and writes [`NOTES`], each acknowledged by the
/// server before the next. Returns the server and the writer.
async fn board_with_acknowledged_notes(
    data_dir: &std::path::Path,
) -> anyhow::Result<(ServerProcess, SyncPeer, hindsight_shared::ids::DocumentId)> {
    let server = ServerProcess::start(data_dir).await?;
    let board = server.create_board("Quarterly retro", "4ls").await?;
    let mut writer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    // One at a time: acknowledgements of a burst can be lost (see
    // sync::every_stored_change_is_acknowledged_to_its_writer).
    for (column, text) in NOTES {
        writer.add_note(column, text).await?;
        writer.wait_acknowledged().await?;
    }
    Ok((server, writer, board.board_id))
}

#[tokio::test]
async fn notes_survive_a_graceful_restart() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (mut first, mut writer, board_id) = board_with_acknowledged_notes(data.path()).await?;

    first.stop().await?;
    let closing = writer.client().expect_close().await?;
    assert_eq!(closing.code, Some(1001), "a client of a server that shuts down is told it is going away: {closing:?}");
    first.assert_no_panics();

    let mut second = ServerProcess::start(data.path()).await?;
    let page = http::get(&format!("{}/b/{board_id}", second.http_url())).await?;
    assert_eq!(page.status, 200, "the board's page after the restart");
    let mut reader = SyncPeer::open(&second.ws_url(), board_id).await?;
    reader.pump_until_heads(&writer.heads()).await?;
    let board = reader.board();
    assert_eq!(board.title, "Quarterly retro");
    assert_eq!(board, writer.board());
    let mut texts: Vec<&str> = board.notes.values().map(|note| note.text.as_str()).collect();
    texts.sort_unstable();
    let mut expected: Vec<&str> = NOTES.iter().map(|(_, text)| *text).collect();
    expected.sort_unstable();
    assert_eq!(texts, expected);

    second.stop().await?;
    second.assert_no_panics();
    Ok(())
}

#[tokio::test]
async fn acknowledged_notes_survive_sigkill() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let (mut first, writer, board_id) = board_with_acknowledged_notes(data.path()).await?;

    // No shutdown, no flush: the server promised the notes were on disk when it acknowledged them.
    first.kill9().await?;
    first.assert_no_panics();

    let mut second = ServerProcess::start(data.path()).await?;
    let mut reader = SyncPeer::open(&second.ws_url(), board_id).await?;
    reader.pump_until_heads(&writer.heads()).await?;
    assert_eq!(reader.board(), writer.board());
    assert_eq!(reader.board().notes.len(), NOTES.len());

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
    const ROUNDS: usize = 10;
    for round in 0..=ROUNDS {
        let mut peer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
        peer.pump_until(&format!("the {round} notes of earlier rounds"), |b| b.notes.len() == round).await?;
        if round == ROUNDS {
            break;
        }
        let column = peer.board().columns[round % 4].id.clone();
        peer.add_note(&column, &format!("round {round}")).await?;
        peer.wait_acknowledged().await?;
        peer.close().await?;
    }
    server.shutdown().await;
    Ok(())
}
