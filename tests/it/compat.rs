//! Wire compatibility with an automerge-repo implementation we did not write: samod, the Rust
//! port of automerge-repo, dials our `/ws` over tokio-tungstenite and finds documents by their
//! `automerge:` URLs. As a viewer it reads a board and follows its changes; as a participant it
//! finds its desk first (which makes its connection that participant), writes a draft there, and
//! sees the note the server publishes from it on the board, as our own participant does.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, published_note_id};
use hindsight_shared::schema::{Board, Desk, Draft, Phase};
use hindsight_shared::templates;
use hindsight_tests::{Participant, TestServer, http, within};
use tokio_tungstenite::tungstenite::{self, Message};

/// A samod [`Dialer`](samod::Dialer) that opens a WebSocket with tokio-tungstenite and hands samod
/// the binary frames, as samod's own (TLS-carrying) tungstenite dialer would.
struct WebSocketDialer {
    url: samod::Url,
}

impl samod::Dialer for WebSocketDialer {
    type Error = Infallible;

    fn url(&self) -> samod::Url {
        self.url.clone()
    }

    fn connect(&self) -> BoxFuture<'static, Result<samod::Transport, samod::DialError<Infallible>>> {
        let url = self.url.to_string();
        async move {
            let (socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .map_err(samod::DialError::transient)?;
            let (sink, stream) = socket.split();
            // Binary frames carry protocol messages; control frames are tungstenite's business; a
            // text frame breaks the protocol.
            let stream = stream
                .filter_map(|frame| async move {
                    match frame {
                        Ok(Message::Binary(bytes)) => Some(Ok(bytes.to_vec())),
                        Ok(Message::Text(_)) => Some(Err(tungstenite::Error::Utf8("a text frame".into()))),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    }
                })
                .boxed();
            let sink =
                sink.with(|bytes: Vec<u8>| async move { Ok::<_, tungstenite::Error>(Message::Binary(bytes.into())) });
            Ok(samod::Transport::new(stream, Box::pin(sink)))
        }
        .boxed()
    }
}

/// A samod repo connected to the server.
pub(crate) async fn samod_repo(server: &impl hindsight_tests::Endpoint) -> anyhow::Result<samod::Repo> {
    let repo = samod::Repo::build_tokio().load().await;
    let url = samod::Url::parse(&server.ws_url())?;
    let dialer = repo.dial(samod::BackoffConfig::default(), Arc::new(WebSocketDialer { url }))?;
    within("samod's handshake with our server", async { Ok(dialer.established().await?) }).await?;
    Ok(repo)
}

/// Finds a document through samod by the URL automerge-repo apps share.
pub(crate) async fn find(repo: &samod::Repo, id: DocumentId) -> anyhow::Result<samod::DocHandle> {
    let address: samod::AutomergeUrl =
        id.automerge_url().parse().map_err(|e| anyhow::anyhow!("samod refuses the URL of {id}: {e:?}"))?;
    let handle = within("samod to find a document", async { Ok(repo.find(address.document_id().clone()).await?) })
        .await?
        .with_context(|| format!("samod says {id} is unavailable"))?;
    assert_eq!(handle.url().to_string(), id.automerge_url());
    Ok(handle)
}

/// Waits until `done` holds for samod's copy of a document.
pub(crate) async fn samod_until(
    what: &str,
    handle: &samod::DocHandle,
    mut done: impl FnMut(&automerge::Automerge) -> bool,
) -> anyhow::Result<()> {
    let mut changes = handle.changes();
    within(what, async {
        while !handle.with_document(|doc| done(doc)) {
            changes.next().await.context("samod's change stream ended")?;
        }
        Ok(())
    })
    .await
}

/// Writes a draft on samod's copy of a desk, as an app built on automerge-repo would.
pub(crate) fn write_draft(desk: &samod::DocHandle, draft: &Draft) -> anyhow::Result<()> {
    desk.with_document(|doc| {
        let mut tx = doc.transaction();
        edit::add_draft(&mut tx, draft)?;
        tx.commit();
        anyhow::Ok(())
    })
}

/// The board as samod's copy of the document has it.
pub(crate) fn read_board(handle: &samod::DocHandle) -> anyhow::Result<Board> {
    handle.with_document(|doc| Ok(Board::read(doc)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_as_a_viewer_opens_a_board_and_follows_it() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let created = server.create_board("Compat retro", "went-well").await;
    let mut fay = Participant::join_as_facilitator(&server, &created, "Fay").await?;
    let column = fay.board().columns[0].id.clone();
    let draft = fay.write(&column, "Written by our own participant").await?;
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal(&column).await?;
    fay.pump_until("the published note", |p| p.board().notes.len() == 1).await?;

    let repo = samod_repo(&server).await?;
    let handle = find(&repo, created.board_id).await?;
    samod_until("the published note", &handle, |doc| Board::read(doc).is_ok_and(|b| b.notes.len() == 1)).await?;
    let seen = read_board(&handle)?;
    assert_eq!(seen.title, "Compat retro");
    assert_eq!(seen.template, "went-well");
    let template = templates::find("went-well").context("the template exists")?;
    let column_ids: Vec<&str> = seen.columns.iter().map(|c| c.id.as_str()).collect();
    let template_ids: Vec<&str> = template.columns.iter().map(|c| c.id).collect();
    assert_eq!(column_ids, template_ids);
    assert_eq!(seen.notes[&fay.note_id(&draft)].text, "Written by our own participant");
    assert_eq!(seen.phase, Phase::Reveal);

    // Our participant's next change reaches samod.
    fay.set_title("Compat retro, renamed").await?;
    samod_until("the new title", &handle, |doc| Board::read(doc).is_ok_and(|b| b.title == "Compat retro, renamed"))
        .await?;
    assert_eq!(read_board(&handle)?, fay.board());

    repo.stop().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_as_a_participant_writes_on_its_desk_and_sees_the_published_note() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let created = server.create_board("Compat retro", "went-well").await;
    let mut fay = Participant::join_as_facilitator(&server, &created, "Fay").await?;
    let joined = http::join_board(&server.http_url(), created.board_id, "Sam", None).await?;

    // The desk first, over the same connection as the board: that makes samod's connection Sam.
    let repo = samod_repo(&server).await?;
    let desk = find(&repo, joined.desk_id).await?;
    let board = find(&repo, created.board_id).await?;
    assert_eq!(desk.with_document(|doc| anyhow::Ok(Desk::read(doc)?))?, Desk::default());
    let column = read_board(&board)?.columns[1].id.clone();

    let draft =
        Draft { id: "samod-1".into(), column: column.clone(), text: "Written through samod".into(), created_at: 1 };
    write_draft(&desk, &draft)?;
    fay.pump_until("Sam's draft on the roster", |p| {
        p.roster().is_some_and(|r| r.iter().any(|e| e.id == joined.participant_id && e.online && e.notes == Some(1)))
    })
    .await?;
    assert!(fay.board().notes.is_empty(), "a draft stays on its desk while writing");

    fay.set_phase(Phase::Reveal).await?;
    fay.reveal(&column).await?;
    let note = published_note_id(&joined.desk_id, &draft.id);
    fay.pump_until("Sam's note", |p| p.board().notes.contains_key(&note)).await?;
    assert_eq!(fay.board().notes[&note].text, "Written through samod");
    assert_eq!(fay.board().notes[&note].author, None);
    samod_until("the published note on samod's board", &board, |doc| {
        Board::read(doc).is_ok_and(|b| b.notes.contains_key(&note))
    })
    .await?;
    assert_eq!(read_board(&board)?, fay.board());

    repo.stop().await;
    server.shutdown().await;
    Ok(())
}
