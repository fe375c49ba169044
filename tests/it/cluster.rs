//! Cluster mode (issue 16): nodes on one Postgres and one NATS, each board owned by one node at a
//! time, clients on any node. Real processes, a real database and a real NATS server, all started
//! by the tests on loopback.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use hindsight_shared::edit;
use hindsight_shared::schema::Phase;
use hindsight_tests::cluster::{ClusterUnderTest, metric, metric_reaches};
use hindsight_tests::{Endpoint, Participant};

/// The lease the tests run with: short, so failovers come quickly, and long enough for a busy
/// machine to renew it (four renewals a lease).
const LEASE_MS: u64 = 2_000;

/// The published notes' texts, as a participant's replica of the board has them.
fn notes(p: &Participant) -> BTreeSet<String> {
    p.board().notes.into_values().map(|n| n.text).collect()
}

/// Runs `$op` (a step of participant `$p`), connecting `$p` again to `$url` and retrying when
/// its connection was closed under it, a few times at most, as a browser would.
macro_rules! again {
    ($p:ident, $url:expr, $op:expr) => {{
        let mut tries = 0;
        loop {
            match $op.await {
                Ok(value) => break value,
                Err(e) => {
                    tries += 1;
                    anyhow::ensure!(tries < 5, "{} never got through: {e:#}", $p.name());
                    eprintln!("{} tries again after: {e:#}", $p.name());
                    if let Err(e) = $p.reconnect(&$url).await {
                        eprintln!("{} could not connect again: {e:#}", $p.name());
                    }
                }
            }
        }
    }};
}

/// Three nodes, one board, its people spread over all three: notes, the reveal, grouping and
/// votes converge on every replica, and the rules hold when the forbidden change comes through a
/// node that does not own the board (a participant moving the phase, a vote over the budget).
#[tokio::test]
async fn three_nodes_serve_one_board_and_its_rules_hold_through_every_node() -> anyhow::Result<()> {
    let cluster = ClusterUnderTest::start(3, LEASE_MS).await?;
    let board = cluster.node(1).create_board("Cluster retro", "4ls").await?;
    // The first to reach the board makes its node the owner: the facilitator, on node 0.
    let mut fac = Participant::join_as_facilitator(cluster.node(0), &board, "Fay").await?;
    let mut ann = Participant::join(cluster.node(1), board.board_id, "Ann").await?;
    let mut bob = Participant::join(cluster.node(2), board.board_id, "Bob").await?;
    assert_eq!(metric(cluster.node(0), "hindsight_cluster_boards_owned").await?, 1.0);
    assert_eq!(metric(cluster.node(1), "hindsight_cluster_boards_owned").await?, 0.0);

    ann.write("liked", "Pairing on the migration").await?;
    bob.write("lacked", "A runbook for failover").await?;
    fac.write("learned", "Leases need fencing").await?;

    // A participant moves the phase, through node 1: refused by the owner, as on one node.
    let hash = ann.send_board_change(|tx| Ok(edit::set_phase(tx, Phase::Reveal)?)).await?;
    assert!(ann.verdict(hash).await?.is_refused(), "a participant moved the phase through a non-owner");
    // A session id no header could hold, through node 1: relayed or dropped, never a broken
    // route (Ann goes on below).
    ann.peer().send_ephemeral("evil\r\nHs-Kind: left", 1, b"hi").await?;

    fac.set_phase(Phase::Reveal).await?;
    fac.reveal_all().await?;
    let all =
        BTreeSet::from(["Pairing on the migration", "A runbook for failover", "Leases need fencing"].map(String::from));
    for p in [&mut fac, &mut ann, &mut bob] {
        p.pump_until("every note published", |p| p.board().notes.len() == 3).await?;
    }
    assert_eq!(notes(&ann), all);
    assert_eq!(notes(&bob), all);

    fac.set_phase(Phase::Vote).await?;
    bob.pump_until("the vote", |p| p.board().phase == Phase::Vote).await?;
    let budget = bob.board().settings.vote_budget;
    let item = bob.board().notes.keys().next().cloned().context("a note")?;
    bob.vote(&item, 1).await?;
    // Bob spends more than his budget on one item, through node 2: refused.
    let hash = bob.send_desk_change(|tx| Ok(edit::set_votes(tx, &item, budget + 1)?)).await?;
    assert!(bob.verdict(hash).await?.is_refused(), "a vote over the budget was taken through a non-owner");

    // Everyone converges on the owner's board.
    fac.set_phase(Phase::Discuss).await?;
    fac.pump_until("Bob's vote counted", |p| p.board().vote_totals.values().sum::<i64>() == 1).await?;
    let heads = fac.heads();
    ann.pump_until_heads(&heads).await?;
    bob.pump_until_heads(&heads).await?;

    assert!(metric(cluster.node(1), "hindsight_cluster_frames_forwarded_total").await? > 0.0);
    assert!(metric(cluster.node(2), "hindsight_cluster_frames_returned_total").await? > 0.0);
    assert!(metric(cluster.node(1), "hindsight_cluster_http_forwarded_total").await? >= 1.0, "Ann's join");
    cluster.stop().await
}

/// The owner is killed (`kill -9`) while its people write through the other two nodes: another
/// node owns the board within the lease time plus a second, every change anyone saw
/// acknowledged is there, the change made meanwhile is taken, and everyone converges.
#[tokio::test]
async fn a_killed_owner_is_replaced_within_its_lease_and_nothing_acknowledged_is_lost() -> anyhow::Result<()> {
    let mut cluster = ClusterUnderTest::start(3, LEASE_MS).await?;
    let board = cluster.node(0).create_board("Failover", "4ls").await?;
    let mut fac = Participant::join_as_facilitator(cluster.node(0), &board, "Fay").await?;
    let mut ann = Participant::join(cluster.node(1), board.board_id, "Ann").await?;
    let mut bob = Participant::join(cluster.node(2), board.board_id, "Bob").await?;
    // Cy reads along on node 2 and stays quiet through the failover.
    let cy = Participant::join(cluster.node(2), board.board_id, "Cy").await?;
    ann.write("liked", "Written before the crash").await?;
    bob.write("lacked", "Also before the crash").await?;
    fac.write("learned", "The facilitator's, before the crash").await?;

    let mut owner = cluster.take(0);
    let killed = Instant::now();
    owner.kill9().await?;
    owner.assert_no_panics();
    // Ann writes at once, through node 1: nobody owns the board for a moment.
    let (_, during) = ann.send_draft("liked", "Written while the owner was dead").await?;
    tokio::select! {
        taken = metric_reaches(cluster.node(1), "hindsight_cluster_boards_owned", 1.0) => taken?,
        taken = metric_reaches(cluster.node(2), "hindsight_cluster_boards_owned", 1.0) => taken?,
    };
    let failover = killed.elapsed();
    println!("failover: a new owner {} ms after kill -9 (lease {LEASE_MS} ms)", failover.as_millis());
    assert!(
        failover <= cluster.lease() + Duration::from_secs(1),
        "no new owner within the lease and a second: {failover:?}"
    );
    ann.verdict(during).await?.accepted().context("the change made during the failover")?;
    bob.write("lacked", "Written after the failover").await?;

    // The facilitator's browser reconnects through another node, as through a load balancer.
    fac.reconnect(&cluster.node(2).ws_url()).await?;
    fac.wait_acknowledged().await?;
    fac.set_phase(Phase::Reveal).await?;
    fac.reveal_all().await?;
    let all = [
        "Written before the crash",
        "Also before the crash",
        "The facilitator's, before the crash",
        "Written while the owner was dead",
        "Written after the failover",
    ];
    for p in [&mut fac, &mut ann, &mut bob] {
        p.pump_until("every note published", |p| p.board().notes.len() == all.len()).await?;
        assert_eq!(notes(p), BTreeSet::from(all.map(String::from)));
    }
    let failovers = metric(cluster.node(1), "hindsight_cluster_failovers_total").await?
        + metric(cluster.node(2), "hindsight_cluster_failovers_total").await?;
    assert!(failovers >= 1.0, "no connection resumed on the new owner");
    // Cy, resumed on the new owner without a word, leaves: the new owner hears of it.
    let online = |p: &Participant, name: &str| p.roster().is_some_and(|r| r.iter().any(|e| e.name == name && e.online));
    bob.pump_until("Cy online on the new owner", |p| online(p, "Cy")).await?;
    cy.close().await?;
    bob.pump_until("Cy gone from the new owner's roster", |p| !online(p, "Cy")).await?;
    cluster.stop().await
}

/// An owner paused (`SIGSTOP`) past its lease while another node takes the board over, then
/// resumed: what its own client sent meanwhile is never acknowledged by it (it lets the board go
/// and closes the connection, code 1012), and once that client connects again its change is
/// taken by the new owner. Nothing the stale owner took after losing the lease was relayed.
#[tokio::test]
async fn a_paused_owner_past_its_lease_acknowledges_nothing_and_lets_the_board_go() -> anyhow::Result<()> {
    let cluster = ClusterUnderTest::start(2, LEASE_MS).await?;
    let board = cluster.node(0).create_board("Paused owner", "4ls").await?;
    let mut ann = Participant::join(cluster.node(0), board.board_id, "Ann").await?;
    let mut bob = Participant::join(cluster.node(1), board.board_id, "Bob").await?;
    ann.write("liked", "Ann, before the pause").await?;

    cluster.node(0).signal("STOP").await?;
    // Bob's node sees the lease run out and takes the board over.
    metric_reaches(cluster.node(1), "hindsight_cluster_boards_owned", 1.0).await?;
    bob.write("lacked", "Bob, on the new owner").await?;
    // Ann's change reaches the paused node's socket.
    let (_, stale) = ann.send_draft("learned", "Ann, sent to the paused owner").await?;
    cluster.node(0).signal("CONT").await?;

    // The paused node lets the board go: Ann's connection closes as "moved", her change never
    // acknowledged by it.
    let closed = ann.verdict(stale).await.err().context("the stale owner answered Ann's change")?;
    assert!(format!("{closed:#}").contains("1012"), "{closed:#}");
    metric_reaches(cluster.node(0), "hindsight_cluster_leases_lost_total", 1.0).await?;
    // Her browser connects again (to the same node, which now forwards to the owner).
    ann.reconnect(&cluster.node(0).ws_url()).await?;
    ann.verdict(stale).await?.accepted().context("Ann's change, through the new owner")?;
    bob.pump_until("Ann's notes counted", |p| {
        p.roster().is_some_and(|r| r.iter().any(|e| e.name == "Ann" && e.notes == Some(2)))
    })
    .await?;
    cluster.stop().await
}

/// Every node restarted in turn (SIGTERM, then started again) while its people write: a node
/// that stops hands its boards over first, so people on the other nodes carry on over the same
/// connection (no reconnect storm); only those on the stopping node reconnect, elsewhere, as a
/// load balancer would send them. No change is lost, nobody is refused anything, and everyone
/// converges.
#[tokio::test]
async fn a_rolling_restart_of_every_node_loses_nothing_and_refuses_nobody() -> anyhow::Result<()> {
    let mut cluster = ClusterUnderTest::start(3, LEASE_MS).await?;
    let board = cluster.node(0).create_board("Rolling restart", "4ls").await?;
    let fac = Participant::join_as_facilitator(cluster.node(0), &board, "Fay").await?;
    let ann = Participant::join(cluster.node(1), board.board_id, "Ann").await?;
    let bob = Participant::join(cluster.node(2), board.board_id, "Bob").await?;
    // Who is connected to which node.
    let mut people = [(fac, 0usize), (ann, 1), (bob, 2)];
    let mut written = BTreeSet::new();
    for round in 0..3 {
        for (p, _) in people.iter_mut() {
            let text = format!("{} before restart {round}", p.name());
            p.write("liked", &text).await?;
            written.insert(text);
        }
        let restarted = round;
        let mut node = cluster.take(restarted);
        node.stop().await?;
        node.assert_no_panics();
        for (p, at) in people.iter_mut() {
            let text = format!("{} during restart {round}", p.name());
            if *at == restarted {
                // Their socket closed with the node: they reconnect to the next node.
                *at = (restarted + 1) % 3;
                p.reconnect(&cluster.node(*at).ws_url()).await?;
            }
            p.write("liked", &text).await.with_context(|| format!("{text}, over node {at}"))?;
            written.insert(text);
        }
        cluster.start_node(restarted).await?;
    }
    for (p, _) in &people {
        assert_eq!(p.refusals(), 0, "{} was refused a change", p.name());
    }
    let [(fac, _), (ann, _), (bob, _)] = &mut people;
    fac.set_phase(Phase::Reveal).await?;
    fac.reveal_all().await?;
    for p in [fac, ann, bob] {
        p.pump_until("every note published", |p| p.board().notes.len() == written.len()).await?;
        assert_eq!(notes(p), written);
    }
    cluster.stop().await
}

/// A stock automerge-repo client (samod) connected to a node that does not own the board: it
/// joins, finds its desk and the board, writes a draft, and sees the note the owner publishes
/// from it, exactly as on one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_on_a_non_owner_node_syncs_a_board_owned_by_another() -> anyhow::Result<()> {
    use hindsight_shared::ids::published_note_id;
    use hindsight_shared::schema::{Board, Draft};

    use crate::compat::{find, read_board, samod_repo, samod_until, write_draft};

    let cluster = ClusterUnderTest::start(2, LEASE_MS).await?;
    let created = cluster.node(0).create_board("Stock client", "went-well").await?;
    let mut fay = Participant::join_as_facilitator(cluster.node(0), &created, "Fay").await?;
    let joined = hindsight_tests::http::join_board(&cluster.node(1).http_url(), created.board_id, "Sam", None).await?;
    let repo = samod_repo(cluster.node(1)).await?;
    let desk = find(&repo, joined.desk_id).await?;
    let board = find(&repo, created.board_id).await?;
    let column = read_board(&board)?.columns[0].id.clone();
    let draft = Draft { id: "samod-1".into(), column: column.clone(), text: "Through node 1".into(), created_at: 1 };
    write_draft(&desk, &draft)?;
    fay.pump_until("Sam's draft on the roster", |p| {
        p.roster().is_some_and(|r| r.iter().any(|e| e.id == joined.participant_id && e.notes == Some(1)))
    })
    .await?;
    fay.set_phase(Phase::Reveal).await?;
    fay.reveal(&column).await?;
    let note = published_note_id(&joined.desk_id, &draft.id);
    samod_until("the published note on samod's board", &board, |doc| {
        Board::read(doc).is_ok_and(|b| b.notes.contains_key(&note))
    })
    .await?;
    assert_eq!(read_board(&board)?.notes[&note].text, "Through node 1");
    assert_eq!(metric(cluster.node(0), "hindsight_cluster_boards_owned").await?, 1.0);
    assert!(metric(cluster.node(1), "hindsight_cluster_frames_forwarded_total").await? > 0.0);
    repo.stop().await;
    // A node started without --nats-url on the cluster's database would serve boards without
    // leases: it is refused.
    let alone = tempfile::tempdir()?;
    let database = cluster.flags(0)[1].clone();
    let refused = hindsight_tests::ServerProcess::start_with(alone.path(), &["--database-url", &database]).await;
    let error = format!("{:#}", refused.err().context("a lone node started on a cluster's database")?);
    assert!(error.contains("another Hindsight node is using this database"), "{error}");
    cluster.stop().await
}

/// Postgres restarts under a cluster at work: `/readyz` of every node says so meanwhile; the
/// nodes reconnect by themselves; a change made during the outage is taken once the database is
/// back (its client keeps it and sends it again, over the same node), and nothing acknowledged is
/// lost.
#[tokio::test]
async fn a_cluster_rides_out_a_database_restart_and_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut cluster = ClusterUnderTest::start(2, LEASE_MS).await?;
    let board = cluster.node(0).create_board("Database restart", "4ls").await?;
    let mut fac = Participant::join_as_facilitator(cluster.node(0), &board, "Fay").await?;
    let mut ann = Participant::join(cluster.node(1), board.board_id, "Ann").await?;
    ann.write("liked", "Before the restart").await?;
    fac.write("liked", "Fay, before the restart").await?;

    cluster.postgres.stop().await?;
    for i in 0..2 {
        let down = readyz_until(cluster.node(i), 503).await?;
        assert_eq!(down["storage"], "unreachable", "{down}");
        assert_eq!(down["nats"], "ok", "{down}");
    }
    let (_, during) = ann.send_draft("lacked", "While the database was down").await?;
    cluster.postgres.start_again().await?;
    for i in 0..2 {
        readyz_until(cluster.node(i), 200).await?;
    }
    // The owner could not renew its lease while the database was down: the board may move, or
    // a node may let a board go that it loaded meanwhile. A connection closed on the way is
    // opened again, over the same node, as a browser does.
    let (ann_url, fac_url) = (cluster.node(1).ws_url(), cluster.node(0).ws_url());
    again!(ann, ann_url, ann.wait_acknowledged());
    again!(ann, ann_url, ann.verdict(during)).accepted().context("the change made while the database was down")?;
    again!(fac, fac_url, fac.set_phase(Phase::Reveal));
    again!(fac, fac_url, fac.reveal_all());
    let all = BTreeSet::from(
        ["Before the restart", "Fay, before the restart", "While the database was down"].map(String::from),
    );
    again!(fac, fac_url, fac.pump_until("every note published", |p| p.board().notes.len() == all.len()));
    again!(ann, ann_url, ann.pump_until("every note published", |p| p.board().notes.len() == all.len()));
    assert_eq!(notes(&fac), all);
    assert_eq!(notes(&ann), all);
    cluster.stop().await
}

/// Polls `/readyz` of `node` until it answers `status`; its body.
async fn readyz_until(node: &hindsight_tests::ServerProcess, status: u16) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/readyz", node.http_url());
    hindsight_tests::within(&format!("/readyz to answer {status}"), async {
        loop {
            let answer = hindsight_tests::http::get(&url).await?;
            if answer.status == status {
                return answer.json::<serde_json::Value>();
            }
            // Readiness changes with no event to wait on: each poll is a real round trip.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// The example load balancer (`deploy/haproxy.cfg`, plain TCP round robin, no sticky sessions)
/// in front of three nodes: people who reach the board through it land on different nodes and
/// converge; when a node is killed, HAProxy's health check takes it out and those who were on
/// it connect again through the same address and carry on.
#[tokio::test]
async fn the_example_haproxy_spreads_a_board_over_three_nodes_and_routes_around_a_dead_one() -> anyhow::Result<()> {
    let mut cluster = ClusterUnderTest::start(3, LEASE_MS).await?;
    let balancer = Haproxy::start(&cluster).await?;
    let board = balancer.create_board("Behind HAProxy", "4ls").await?;
    let mut fac = Participant::join_as_facilitator(&balancer, &board, "Fay").await?;
    let mut people = Vec::new();
    for name in ["Ann", "Bob", "Cy", "Di", "Ed"] {
        let mut p = Participant::join(&balancer, board.board_id, name).await?;
        p.write("liked", &format!("{name}, through the balancer")).await?;
        people.push(p);
    }
    // Round robin put connections on every node: each forwarded or owned some.
    for i in 0..3 {
        let node = cluster.node(i);
        let busy = metric(node, "hindsight_cluster_boards_owned").await?
            + metric(node, "hindsight_cluster_frames_forwarded_total").await?;
        assert!(busy > 0.0, "node {i} served nobody");
    }
    // Kill a node that is not the owner; whoever was on it connects again through HAProxy.
    let owner = (0..3).find(|i| cluster.nodes[*i].is_some()).context("a node")?;
    let mut owner_index = owner;
    for i in 0..3 {
        if metric(cluster.node(i), "hindsight_cluster_boards_owned").await? == 1.0 {
            owner_index = i;
        }
    }
    let victim = (owner_index + 1) % 3;
    cluster.take(victim).kill9().await?;
    for p in &mut people {
        if p.write("lacked", &format!("{}, after a node died", p.name())).await.is_err() {
            // As a browser does: the same address again, which the balancer sends elsewhere;
            // the note, kept, goes again.
            p.reconnect(&balancer.ws_url()).await?;
            again!(p, balancer.ws_url(), p.wait_acknowledged());
        }
    }
    again!(fac, balancer.ws_url(), fac.set_phase(Phase::Reveal));
    again!(fac, balancer.ws_url(), fac.reveal_all());
    again!(fac, balancer.ws_url(), fac.pump_until("every note", |p| p.board().notes.len() == 10));
    cluster.stop().await
}

/// HAProxy running `deploy/haproxy.cfg`, its ports replaced by this cluster's, killed when
/// dropped.
struct Haproxy {
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
    address: std::net::SocketAddr,
}

impl Haproxy {
    async fn start(cluster: &ClusterUnderTest) -> anyhow::Result<Self> {
        let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/haproxy.cfg"))?;
        // A free port, picked by the kernel and let go for HAProxy (which cannot report one).
        let address = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut config = example.replace("127.0.0.1:8080", &address.to_string());
        for i in 0..3 {
            let node = cluster.node(i).http_url().replace("http://", "");
            config = config.replace(&format!("127.0.0.1:300{i}"), &node);
        }
        anyhow::ensure!(config != example, "the example's addresses were not found");
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config)?;
        let child = tokio::process::Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("could not start haproxy (is it installed? scripts/setup-haproxy.sh)")?;
        let balancer = Self { _dir: dir, _child: child, address };
        // Up once every node passed its health check: the balancer answers /readyz itself only
        // through a node, so poll until three answers came back.
        hindsight_tests::within("HAProxy to pass traffic", async {
            loop {
                if let Ok(answer) = hindsight_tests::http::get(&format!("{}/readyz", balancer.http_url())).await
                    && answer.status == 200
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await?;
        Ok(balancer)
    }

    async fn create_board(&self, title: &str, template: &str) -> anyhow::Result<hindsight_tests::BoardCreated> {
        hindsight_tests::http::create_board(&self.http_url(), title, template).await
    }
}

impl Endpoint for Haproxy {
    fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }
}

/// A node whose NATS server does not answer stops with a clear error that shows no password; a
/// NATS URL without a database is refused before anything starts.
#[tokio::test]
async fn a_node_without_its_nats_server_stops_with_a_clear_error_and_no_password() -> anyhow::Result<()> {
    let postgres = hindsight_tests::postgres::Postgres::start().await?;
    let database = postgres.create_database("hindsight").await?;
    let data = tempfile::tempdir()?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let nats = format!("nats://hindsight:s3cret-password@127.0.0.1:{closed}");
    let flags = ["--database-url", database.as_str(), "--nats-url", nats.as_str()];
    let failed = hindsight_tests::ServerProcess::start_with(data.path(), &flags).await;
    let error = format!("{:#}", failed.err().context("a node without NATS started")?);
    assert!(error.contains("could not connect to NATS"), "{error}");
    assert!(!error.contains("s3cret-password"), "the password is in the log: {error}");

    let alone = hindsight_tests::ServerProcess::start_with(data.path(), &["--nats-url", nats.as_str()]).await;
    let error = format!("{:#}", alone.err().context("a cluster node without a database started")?);
    assert!(error.contains("--database-url"), "{error}");
    assert!(!error.contains("s3cret-password"), "the password is in the log: {error}");
    Ok(())
}
