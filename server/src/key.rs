//! The facilitator key: made when a board is created, shown once, kept only as its SHA-256 and
//! compared in constant time.
//!
//! Invariant: the key itself is never stored or logged; only [`KeyHash`] is kept.

use hindsight_shared::ids::random_token;
use sha2::{Digest, Sha256};

/// A new facilitator key: 16 random bytes in bs58.
pub fn new_key() -> String {
    random_token::<16>()
}

/// The SHA-256 of a facilitator key: what storage keeps instead of the key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// True if `key` is the key this is the hash of. Compares in constant time.
    pub fn matches(&self, key: &str) -> bool {
        let other = Self::of(key);
        self.0.iter().zip(&other.0).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// Never shows the hash: logs have no use for it.
impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_matches_its_hash() {
        let key = new_key();
        let hash = KeyHash::of(&key);
        assert!(hash.matches(&key));
        assert!(!hash.matches(&new_key()));
        assert!(!hash.matches(""));
        assert_eq!(format!("{hash:?}"), "KeyHash(..)");
    }
}
