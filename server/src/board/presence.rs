//! Who is here, as the board tells its peers: the roster is sent whole to a connection once,
//! then only the entries that changed, at most every [`INTERVAL`] for a board.
//!
//! A board of a thousand people (most of them gone) costs each newcomer one roster, and each
//! later change a few entries to each peer, instead of the whole roster to every peer every time
//! anyone comes or goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use hindsight_shared::presence::PresenceEntry;
use hindsight_shared::schema::{Board, Phase};

use super::desk::Desks;
use super::replica::ConnId;

/// The least time between two roster updates of one board.
pub const INTERVAL: Duration = Duration::from_millis(200);

/// The most time between two roster updates to a connection: when nothing changed for this
/// long, an empty update goes out, so a browser can tell a quiet connection from a dead one (it
/// cannot see WebSocket pings). It also carries the server's clock again.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The roster as the board's peers last heard it.
#[derive(Debug, Default)]
pub struct Presence {
    /// The roster as sent, by participant id.
    sent: BTreeMap<String, PresenceEntry>,
    /// Connections that hold `sent` (or a newer roster).
    current: HashSet<ConnId>,
    /// Something the roster shows may have changed since it was last built.
    stale: bool,
    /// When the last update was sent.
    last_update: Option<Instant>,
    /// When every connection in `current` last heard from the board.
    last_beat: Option<Instant>,
}

/// What to send one connection.
#[derive(Debug, PartialEq, Eq)]
pub struct RosterUpdate {
    pub conn: ConnId,
    /// Every entry (`full`), or the ones that changed since the last update.
    pub entries: Vec<PresenceEntry>,
    pub full: bool,
}

impl Presence {
    /// Something the roster shows may have changed.
    pub fn touch(&mut self) {
        self.stale = true;
    }

    /// Forgets a connection that left.
    pub fn leave(&mut self, conn: ConnId) {
        self.current.remove(&conn);
        self.stale = true;
    }

    /// The updates owed now: the whole roster to connections that have none, the changes to
    /// the others once [`INTERVAL`] has passed since the last, and an empty update to everyone
    /// after a [`HEARTBEAT`] of silence. Also returns when to ask again: for a change waiting
    /// for its interval, or for the next heartbeat.
    pub fn flush(
        &mut self,
        now: Instant,
        peers: impl Iterator<Item = ConnId>,
        roster: impl FnOnce() -> BTreeMap<String, PresenceEntry>,
    ) -> (Vec<RosterUpdate>, Option<Instant>) {
        let newcomers: Vec<ConnId> = peers.filter(|conn| !self.current.contains(conn)).collect();
        let due = self.last_update.is_none_or(|last| now >= last + INTERVAL);
        let beat = self.last_beat.is_some_and(|last| now >= last + HEARTBEAT);
        if newcomers.is_empty() && !(self.stale && due) {
            let mut updates = Vec::new();
            if beat {
                updates =
                    self.current.iter().map(|&conn| RosterUpdate { conn, entries: Vec::new(), full: false }).collect();
                self.last_beat = Some(now);
            }
            return (updates, self.wake(now));
        }
        let latest = roster();
        let mut updates = Vec::new();
        if self.stale && due {
            let changed: Vec<PresenceEntry> =
                latest.iter().filter(|(id, entry)| self.sent.get(*id) != Some(entry)).map(|(_, e)| e.clone()).collect();
            if !changed.is_empty() || beat {
                for &conn in &self.current {
                    updates.push(RosterUpdate { conn, entries: changed.clone(), full: false });
                }
                self.last_beat = Some(now);
            }
            if !changed.is_empty() {
                self.last_update = Some(now);
            }
            self.sent = latest.clone();
            self.stale = false;
        }
        if !newcomers.is_empty() {
            if self.current.is_empty() {
                // Nobody holds an older roster: this one is the roster as sent.
                self.sent = latest;
                self.stale = false;
            }
            // Newcomers get the roster the others hold, and what changed since comes to
            // everyone with the next update. Given a newer one, a newcomer would hold entries
            // the next update (a difference from `sent`) may never correct: someone who came
            // and went in between would stay online for it.
            let whole: Vec<PresenceEntry> = self.sent.values().cloned().collect();
            for conn in newcomers {
                updates.push(RosterUpdate { conn, entries: whole.clone(), full: true });
                self.current.insert(conn);
            }
            self.last_beat.get_or_insert(now);
        }
        (updates, self.wake(now))
    }

    /// When to flush next: for a change waiting for its interval, or for the next heartbeat.
    fn wake(&self, now: Instant) -> Option<Instant> {
        let change = self.stale.then(|| self.last_update.map_or(now, |last| last + INTERVAL));
        let beat = self.last_beat.filter(|_| !self.current.is_empty()).map(|last| last + HEARTBEAT);
        change.into_iter().chain(beat).min()
    }
}

/// The roster as it stands: every participant, who is online (has a connection that synced
/// their desk), and during Write and Vote what they did (how many notes, whether they voted).
/// Desks not loaded yet show only name and presence.
pub fn roster(board: &Board, desks: &Desks, online: &HashMap<ConnId, String>) -> BTreeMap<String, PresenceEntry> {
    let online: HashSet<&String> = online.values().collect();
    desks
        .values()
        .map(|slot| {
            let participant = &slot.participant;
            let desk = slot.loaded.as_ref().map(|d| &d.cache);
            let entry = PresenceEntry {
                id: participant.id.clone(),
                name: participant.name.clone(),
                facilitator: board.facilitates(&participant.id),
                online: online.contains(&participant.id),
                notes: desk.filter(|_| board.phase == Phase::Write).map(|d| d.drafts.len() as u32),
                voted: desk.is_some_and(|d| board.phase == Phase::Vote && (!d.votes.is_empty() || d.abstain)),
                ready: desk.is_some_and(|d| d.ready),
            };
            (participant.id.clone(), entry)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, online: bool) -> (String, PresenceEntry) {
        (id.to_owned(), PresenceEntry { id: id.into(), name: id.into(), online, ..Default::default() })
    }

    #[test]
    fn newcomers_get_everything_and_the_others_only_what_changed_once_per_interval() {
        let start = Instant::now();
        let mut presence = Presence::default();
        let roster = BTreeMap::from([entry("a", true), entry("b", false)]);
        let (updates, _) = presence.flush(start, [1].into_iter(), || roster.clone());
        assert_eq!(updates, [RosterUpdate { conn: 1, entries: roster.values().cloned().collect(), full: true }]);

        // Bob comes online: connection 1 hears only of Bob, and not twice within the interval.
        presence.touch();
        let roster = BTreeMap::from([entry("a", true), entry("b", true)]);
        let (updates, _) = presence.flush(start + INTERVAL, [1].into_iter(), || roster.clone());
        assert_eq!(updates, [RosterUpdate { conn: 1, entries: vec![entry("b", true).1], full: false }]);
        presence.touch();
        let later = BTreeMap::from([entry("a", false), entry("b", true)]);
        let (updates, wake) =
            presence.flush(start + INTERVAL + Duration::from_millis(1), [1].into_iter(), || later.clone());
        assert!(updates.is_empty(), "debounced");
        assert_eq!(wake, Some(start + INTERVAL * 2));
        let (updates, wake) = presence.flush(start + INTERVAL * 2, [1, 2].into_iter(), || later.clone());
        assert_eq!(wake, Some(start + INTERVAL * 2 + HEARTBEAT), "only the heartbeat is owed");
        assert!(updates.contains(&RosterUpdate { conn: 1, entries: vec![entry("a", false).1], full: false }));
        assert!(updates.contains(&RosterUpdate { conn: 2, entries: later.values().cloned().collect(), full: true }));
    }

    /// Applies updates to what each connection holds, as a browser merges them.
    fn apply(held: &mut HashMap<ConnId, BTreeMap<String, PresenceEntry>>, updates: Vec<RosterUpdate>) {
        for update in updates {
            let roster = held.entry(update.conn).or_default();
            if update.full {
                roster.clear();
            }
            roster.extend(update.entries.into_iter().map(|e| (e.id.clone(), e)));
        }
    }

    /// Someone comes and goes while a newcomer arrives within one interval (a failover resumes
    /// many connections at once): every connection ends up holding the roster as it is.
    #[test]
    fn a_newcomer_never_keeps_an_entry_that_changed_back_before_the_next_update() {
        let start = Instant::now();
        let mut presence = Presence::default();
        let mut held = HashMap::new();
        let before = BTreeMap::from([entry("a", true), entry("c", false)]);
        presence.touch();
        apply(&mut held, presence.flush(start, [1].into_iter(), || before.clone()).0);
        // Within the interval: c comes online as connection 2 arrives, then goes again.
        presence.touch();
        let c_here = BTreeMap::from([entry("a", true), entry("c", true)]);
        apply(&mut held, presence.flush(start + Duration::from_millis(1), [1, 2].into_iter(), || c_here.clone()).0);
        presence.touch();
        apply(&mut held, presence.flush(start + Duration::from_millis(2), [1, 2].into_iter(), || before.clone()).0);
        let (updates, wake) = presence.flush(start + INTERVAL, [1, 2].into_iter(), || before.clone());
        apply(&mut held, updates);
        assert_eq!(held[&1], before);
        assert_eq!(held[&2], before, "connection 2 still shows c online");
        assert_eq!(wake, Some(start + HEARTBEAT), "nothing more is owed");
    }

    #[test]
    fn a_quiet_board_sends_everyone_an_empty_update_every_heartbeat() {
        let start = Instant::now();
        let mut presence = Presence::default();
        let roster = BTreeMap::from([entry("a", true)]);
        let (_, wake) = presence.flush(start, [1, 2].into_iter(), || roster.clone());
        assert_eq!(wake, Some(start + HEARTBEAT));
        let (updates, _) = presence.flush(start + HEARTBEAT / 2, [1, 2].into_iter(), || roster.clone());
        assert!(updates.is_empty(), "not yet");
        let (mut updates, wake) = presence.flush(start + HEARTBEAT, [1, 2].into_iter(), || roster.clone());
        updates.sort_by_key(|u| u.conn);
        let beat = |conn| RosterUpdate { conn, entries: Vec::new(), full: false };
        assert_eq!(updates, [beat(1), beat(2)]);
        assert_eq!(wake, Some(start + HEARTBEAT * 2));
        presence.leave(1);
        presence.leave(2);
        let (_, wake) = presence.flush(start + HEARTBEAT * 2, std::iter::empty(), BTreeMap::new);
        assert_eq!(wake, None, "nobody to beat for");
    }
}
