//! Wire compatibility with an automerge-repo implementation we did not write: samod, the Rust
//! port of automerge-repo, dials our `/ws` over tokio-tungstenite, finds a board by its
//! `automerge:` URL, and syncs changes both ways with one of our own peers.

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::Context;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt, StreamExt};
use hindsight_shared::ids::NoteId;
use hindsight_shared::schema::{self, Board, Note};
use hindsight_shared::templates;
use hindsight_tests::{SyncPeer, TestServer, within};
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

/// The board as samod's copy of the document has it.
fn read_board(handle: &samod::DocHandle) -> anyhow::Result<Board> {
    handle.with_document(|doc| Ok(Board::read(doc)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samod_opens_a_board_and_syncs_notes_both_ways() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let created = server.create_board("Compat retro", "went-well").await;
    let mut ours = SyncPeer::open(&server.ws_url(), created.board_id).await?;
    let column = ours.board().columns[0].id.clone();
    let ours_note = ours.add_note(&column, "Written by our own peer").await?;
    ours.wait_acknowledged().await?;

    // samod connects and finds the board by the URL automerge-repo apps share.
    let repo = samod::Repo::build_tokio().load().await;
    let url = samod::Url::parse(&server.ws_url())?;
    let dialer = repo.dial(samod::BackoffConfig::default(), Arc::new(WebSocketDialer { url }))?;
    within("samod's handshake with our server", async { Ok(dialer.established().await?) }).await?;
    let address: samod::AutomergeUrl = created
        .board_id
        .automerge_url()
        .parse()
        .map_err(|e| anyhow::anyhow!("samod refuses the board's URL: {e:?}"))?;
    let handle = within("samod to find the board", async { Ok(repo.find(address.document_id().clone()).await?) })
        .await?
        .context("samod says the board is unavailable")?;
    assert_eq!(handle.url().to_string(), created.board_id.automerge_url());

    let seen = read_board(&handle)?;
    assert_eq!(seen.title, "Compat retro");
    assert_eq!(seen.template, "went-well");
    let template = templates::find("went-well").context("the template exists")?;
    let column_ids: Vec<&str> = seen.columns.iter().map(|c| c.id.as_str()).collect();
    let template_ids: Vec<&str> = template.columns.iter().map(|c| c.id).collect();
    assert_eq!(column_ids, template_ids);
    assert_eq!(seen.notes[ours_note.as_str()].text, "Written by our own peer");

    // A change made through samod reaches our peer through the server.
    let samod_note = NoteId::random();
    let note = Note {
        id: samod_note.to_string(),
        column: column.clone(),
        text: "Written through samod".into(),
        created_at: 1,
        cluster: None,
    };
    handle.with_document(|doc| {
        let mut tx = doc.transaction();
        schema::add_note(&mut tx, &note)?;
        tx.commit();
        anyhow::Ok(())
    })?;
    ours.pump_until("samod's note", |board| board.notes.contains_key(samod_note.as_str())).await?;
    assert_eq!(ours.board().notes[samod_note.as_str()].text, "Written through samod");

    // And our edit of samod's note reaches samod.
    ours.edit_note(&samod_note, "Edited by our own peer").await?;
    let mut changes = handle.changes();
    within("samod to see our edit", async {
        loop {
            let text = read_board(&handle)?.notes.get(samod_note.as_str()).map(|n| n.text.clone());
            if text.as_deref() == Some("Edited by our own peer") {
                return Ok(());
            }
            changes.next().await.context("samod's change stream ended")?;
        }
    })
    .await?;
    let samod_board = read_board(&handle)?;
    ours.pump_until("the same board as samod's", |board| *board == samod_board).await?;

    repo.stop().await;
    server.shutdown().await;
    Ok(())
}
