//! Per-client limits: how many connections one client address holds, and how fast it may create
//! boards and join them.
//!
//! A client is an IP address, an IPv6 address counted by its /64 (one host gets a whole /64). The
//! address is the socket's peer, or, behind a reverse proxy that says so (`--client-ip-header`),
//! the address the proxy names; then the proxy's own connections are not limited per address.
//!
//! Locking: a `DashMap` shard lock is held only inside each synchronous method here, never across
//! an `.await`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

use crate::budget::TokenBucket;

/// The limits one client keeps.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Connections (TCP, WebSocket) one client holds at once.
    pub max_connections: usize,
    /// Boards one client may create, and people it may join, per minute (with a burst as large).
    pub board_creations_per_minute: u32,
    pub joins_per_minute: u32,
}

/// A client's address, as limits count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(u128);

impl From<IpAddr> for ClientKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            // The /64 prefix, marked apart from the IPv4 space.
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                None => Self((u128::from(v6) >> 64) | (1 << 127)),
            },
        }
    }
}

#[derive(Debug)]
struct ClientState {
    connections: usize,
    creations: TokenBucket,
    joins: TokenBucket,
}

/// Every client's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clients {
    limits: ClientLimits,
    states: Arc<DashMap<ClientKey, ClientState>>,
}

/// Why a client's request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("too many connections from your address: at most {0} at once")]
    Connections(usize),
    #[error("too many new boards from your address: at most {0} a minute; try again in a minute")]
    Creations(u32),
    #[error("too many joins from your address: at most {0} a minute; try again in a minute")]
    Joins(u32),
}

impl Clients {
    pub fn new(limits: ClientLimits) -> Self {
        Self { limits, states: Arc::new(DashMap::new()) }
    }

    fn state(&self, now: Instant) -> ClientState {
        let per_second = |per_minute: u32| f64::from(per_minute) / 60.0;
        let (creations, joins) = (self.limits.board_creations_per_minute, self.limits.joins_per_minute);
        ClientState {
            connections: 0,
            creations: TokenBucket::new(per_second(creations), f64::from(creations), now),
            joins: TokenBucket::new(per_second(joins), f64::from(joins), now),
        }
    }

    /// Counts a new connection of `client`, or refuses it. The connection is counted until the
    /// returned guard is dropped.
    pub fn connect(&self, client: ClientKey) -> Result<ConnectionGuard, Refused> {
        let now = Instant::now();
        let mut state = self.states.entry(client).or_insert_with(|| self.state(now));
        if state.connections >= self.limits.max_connections {
            return Err(Refused::Connections(self.limits.max_connections));
        }
        state.connections += 1;
        Ok(ConnectionGuard { clients: self.clone(), client })
    }

    /// Takes one board creation from `client`'s allowance.
    pub fn create_board(&self, client: ClientKey) -> Result<(), Refused> {
        let now = Instant::now();
        let mut state = self.states.entry(client).or_insert_with(|| self.state(now));
        if state.creations.take(1.0, now) {
            Ok(())
        } else {
            Err(Refused::Creations(self.limits.board_creations_per_minute))
        }
    }

    /// Takes one join from `client`'s allowance.
    pub fn join(&self, client: ClientKey) -> Result<(), Refused> {
        let now = Instant::now();
        let mut state = self.states.entry(client).or_insert_with(|| self.state(now));
        if state.joins.take(1.0, now) { Ok(()) } else { Err(Refused::Joins(self.limits.joins_per_minute)) }
    }

    /// Forgets clients with no connection whose allowances are full again, so the map holds only
    /// clients that are here or were recently.
    pub fn sweep(&self) {
        let now = Instant::now();
        let (creations, joins) = (self.limits.board_creations_per_minute, self.limits.joins_per_minute);
        self.states.retain(|_, state| {
            state.connections > 0
                || state.creations.available(now) < u64::from(creations)
                || state.joins.available(now) < u64::from(joins)
        });
    }
}

/// Holds one counted connection of a client.
#[derive(Debug)]
pub struct ConnectionGuard {
    clients: Clients,
    client: ClientKey,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(mut state) = self.clients.states.get_mut(&self.client) {
            state.connections = state.connections.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_holds_at_most_its_connections_and_an_ipv6_host_is_its_64() {
        let clients =
            Clients::new(ClientLimits { max_connections: 2, board_creations_per_minute: 1, joins_per_minute: 1 });
        let host: ClientKey = "2001:db8::1".parse::<IpAddr>().expect("ip").into();
        let same: ClientKey = "2001:db8::ffff:2".parse::<IpAddr>().expect("ip").into();
        assert_eq!(host, same);
        let one = clients.connect(host).expect("first");
        let _two = clients.connect(same).expect("second");
        assert_eq!(clients.connect(host).err(), Some(Refused::Connections(2)));
        drop(one);
        assert!(clients.connect(host).is_ok(), "a slot is free again");
        assert!(clients.create_board(host).is_ok());
        assert_eq!(clients.create_board(host), Err(Refused::Creations(1)));
        let other: ClientKey = "192.0.2.7".parse::<IpAddr>().expect("ip").into();
        assert!(clients.create_board(other).is_ok(), "another client has its own allowance");
    }
}
