//! Decompression bombs: Automerge change chunks of a few dozen bytes that declare millions of
//! operations, written byte by byte as Automerge's storage format allows (run-length-encoded
//! columns: one run says "N times the same"), and the same deflated as a compressed change.
//!
//! Each bomb is a real change: Automerge decodes it into `ops` operations (each puts null at the
//! root key `k`), which is what makes it costly to anyone who decodes it.

use std::io::Write as _;

use automerge::ActorId;
use hindsight_shared::chunks::{write_sleb as sleb, write_uleb as uleb};
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// A run of `count` copies of one unsigned value, in Automerge's run-length encoding.
fn run(count: u64, value: u64) -> Vec<u8> {
    let mut column = Vec::new();
    sleb(&mut column, i64::try_from(count).unwrap_or(i64::MAX));
    uleb(&mut column, value);
    column
}

/// The data of a change chunk (everything after its header) with `ops` operations.
fn change_data(ops: u64, actor: &ActorId) -> Vec<u8> {
    let mut data = Vec::new();
    uleb(&mut data, 0); // no dependencies
    uleb(&mut data, actor.to_bytes().len() as u64);
    data.extend(actor.to_bytes());
    uleb(&mut data, 1); // seq
    uleb(&mut data, 1); // start op
    sleb(&mut data, 0); // time
    uleb(&mut data, 0); // no message
    uleb(&mut data, 0); // no other actors
    // The columns, by spec (column id << 4 | type), in Automerge's order.
    let mut key = Vec::new();
    sleb(&mut key, i64::try_from(ops).unwrap_or(i64::MAX));
    uleb(&mut key, 1);
    key.push(b'k');
    let mut insert = Vec::new();
    uleb(&mut insert, ops); // `ops` times false
    let columns: [(u32, Vec<u8>); 5] = [
        (1 << 4 | 5, key),         // key: the string "k", ops times
        (3 << 4 | 4, insert),      // insert: false
        (4 << 4 | 2, run(ops, 1)), // action: put
        (5 << 4 | 6, run(ops, 0)), // value: null, no bytes
        (7 << 4, run(ops, 0)),     // pred: none
    ];
    uleb(&mut data, columns.len() as u64);
    for (spec, column) in &columns {
        uleb(&mut data, u64::from(*spec));
        uleb(&mut data, column.len() as u64);
    }
    for (_, column) in columns {
        data.extend(column);
    }
    data
}

/// A chunk of `kind` around `data`, checksummed over `checked` (the data itself, or what a
/// compressed chunk inflates to).
fn chunk(kind: u8, data: &[u8], checked_kind: u8, checked: &[u8]) -> Vec<u8> {
    let mut hashed = vec![checked_kind];
    uleb(&mut hashed, checked.len() as u64);
    hashed.extend(checked);
    let hash = Sha256::digest(&hashed);
    let mut out = MAGIC.to_vec();
    out.extend(&hash[..4]);
    out.push(kind);
    uleb(&mut out, data.len() as u64);
    out.extend(data);
    out
}

/// A change chunk that declares `ops` operations, in a few dozen bytes.
pub fn change(ops: u64) -> Vec<u8> {
    let data = change_data(ops, &ActorId::random());
    chunk(1, &data, 1, &data)
}

/// The same, deflated as a compressed change chunk.
pub fn compressed_change(ops: u64) -> Vec<u8> {
    let data = change_data(ops, &ActorId::random());
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    deflate.write_all(&data).expect("deflate into memory");
    let deflated = deflate.finish().expect("deflate into memory");
    chunk(2, &deflated, 1, &data)
}

/// A sync message carrying `chunks`, as a peer that claims to have nothing else sends it.
pub fn sync_message(chunks: Vec<Vec<u8>>) -> Vec<u8> {
    automerge::sync::Message {
        heads: Vec::new(),
        need: Vec::new(),
        have: Vec::new(),
        changes: chunks.into(),
        flags: None,
        version: automerge::sync::MessageVersion::V1,
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bombs are what they claim: Automerge decodes them into that many operations.
    #[test]
    fn automerge_takes_a_bomb_for_what_it_declares() {
        for bytes in [change(5_000), compressed_change(5_000)] {
            assert!(bytes.len() < 200, "a bomb is small: {} bytes", bytes.len());
            let change = automerge::Change::try_from(bytes.as_slice()).expect("a valid change");
            assert_eq!(change.len(), 5_000);
        }
    }
}
