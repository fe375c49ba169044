//! Automerge's binary chunks, measured without being loaded: how many changes and operations a
//! sync message carries, and how large it grows when inflated, read from chunk headers and
//! run-length-encoded columns alone.
//!
//! A peer's sync message carries changes as Automerge *chunks* (a document, a change, a
//! compressed change or a bundle of changes), each `magic(4) checksum(4) type(1) length(uleb)
//! data`. Their columns are run-length encoded, and may be deflated, so a few kilobytes can
//! declare millions of operations: loading such a chunk costs seconds of CPU and gigabytes of
//! memory. [`measure`] walks the columns without building anything (skipping runs costs one step
//! per run, not per row), inflates deflated parts into a bounded buffer, and reports the largest
//! row count of any column, which bounds the operations Automerge would decode. The server refuses
//! what exceeds its bounds before Automerge sees a byte of it.
//!
//! The format is documented at <https://alexjg.github.io/automerge-storage-docs/>; the row
//! counting follows automerge 0.12's `columnar::encoding` decoders.

use std::io::Read;

use automerge::{Automerge, Change};
use sha2::{Digest, Sha256};

/// The four bytes every Automerge chunk starts with.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];

/// The kind of an Automerge chunk: its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// A whole document (what `Automerge::save` writes, and what a sync message carries when it
    /// sends most of a document).
    Document,
    /// One change.
    Change,
    /// One change, deflated as a whole.
    CompressedChange,
    /// Several changes in columns (Automerge 3's bundles).
    Bundle,
}

impl ChunkKind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            0 => Self::Document,
            1 => Self::Change,
            2 => Self::CompressedChange,
            3 => Self::Bundle,
            _ => return None,
        })
    }
}

/// One chunk, as it sits in the bytes it was split from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    pub kind: ChunkKind,
    /// The whole chunk, header included.
    pub bytes: &'a [u8],
    /// Where its data starts in `bytes` (after magic, checksum, type and length).
    data_start: usize,
}

impl<'a> Chunk<'a> {
    /// The chunk's data, after its header.
    pub fn data(&self) -> &'a [u8] {
        &self.bytes[self.data_start..]
    }

    /// The changes the chunk carries, decoded by Automerge: the one place chunks become changes.
    /// A document chunk is loaded as a whole document, so [`measure`] it first.
    pub fn changes(&self) -> Result<Vec<Change>, ChunkError> {
        let undecodable = |e: &dyn std::fmt::Display| ChunkError::Undecodable(e.to_string());
        Ok(match self.kind {
            ChunkKind::Document => Automerge::load(self.bytes).map_err(|e| undecodable(&e))?.get_changes(&[]),
            ChunkKind::Change | ChunkKind::CompressedChange => {
                vec![Change::try_from(self.bytes).map_err(|e| undecodable(&e))?]
            }
            ChunkKind::Bundle => automerge::Bundle::try_from(self.bytes)
                .map_err(|e| undecodable(&e))?
                .to_changes()
                .map_err(|e| undecodable(&e))?,
        })
    }

    /// The hash Automerge gives a change chunk: SHA-256 of its type, length and data. Only a
    /// plain change chunk's hash is its change's hash, so other kinds have none.
    pub fn change_hash(&self) -> Option<[u8; 32]> {
        (self.kind == ChunkKind::Change).then(|| Sha256::digest(&self.bytes[8..]).into())
    }
}

/// What a chunk (or a whole message) would cost to load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Changes it holds (an upper bound for documents and bundles).
    pub changes: u64,
    /// Operations it holds: the longest column, which bounds what Automerge would decode.
    pub ops: u64,
    /// Bytes once its deflated parts are inflated, header and all.
    pub inflated_bytes: u64,
}

impl Cost {
    fn add(&mut self, other: Cost) {
        self.changes = self.changes.saturating_add(other.changes);
        self.ops = self.ops.saturating_add(other.ops);
        self.inflated_bytes = self.inflated_bytes.saturating_add(other.inflated_bytes);
    }
}

/// Why chunks were not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("the changes are not well-formed Automerge chunks: {0}")]
    Malformed(&'static str),
    #[error("the message inflates to more than {max} bytes")]
    TooLarge { max: u64 },
    /// Automerge could not decode a chunk (see [`Chunk::changes`]).
    #[error("the changes are malformed: {0}")]
    Undecodable(String),
}

/// Splits bytes holding Automerge chunks back to back into single chunks, by their headers.
pub fn split(mut bytes: &[u8]) -> Result<Vec<Chunk<'_>>, ChunkError> {
    let mut chunks = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err(ChunkError::Malformed("a chunk does not start with Automerge's magic bytes"));
        }
        let kind = ChunkKind::from_byte(bytes[8]).ok_or(ChunkError::Malformed("an unknown chunk type"))?;
        let mut reader = Reader::new(&bytes[9..]);
        let length = reader.uleb()?;
        let data_start = 9 + reader.at;
        let end = usize::try_from(length)
            .ok()
            .and_then(|l| data_start.checked_add(l))
            .filter(|end| *end <= bytes.len())
            .ok_or(ChunkError::Malformed("a chunk is longer than the bytes that carry it"))?;
        chunks.push(Chunk { kind, bytes: &bytes[..end], data_start });
        bytes = &bytes[end..];
    }
    Ok(chunks)
}

/// Measures one chunk, and checks its checksum. Deflated parts are inflated into memory, at most
/// `inflate_budget` bytes in all; more is [`ChunkError::TooLarge`].
pub fn measure(chunk: &Chunk<'_>, inflate_budget: u64) -> Result<Cost, ChunkError> {
    const BAD_CHECKSUM: ChunkError = ChunkError::Malformed("a chunk's checksum does not match its data (bad checksum)");
    let data = chunk.data();
    let header = u64::try_from(chunk.data_start).unwrap_or(u64::MAX);
    if chunk.kind != ChunkKind::CompressedChange && Sha256::digest(&chunk.bytes[8..])[..4] != chunk.bytes[4..8] {
        return Err(BAD_CHECKSUM);
    }
    let mut cost = match chunk.kind {
        ChunkKind::Change => change_cost(data, &mut Budget(inflate_budget))?,
        ChunkKind::CompressedChange => {
            let inflated = inflate(data, inflate_budget)?;
            // The checksum is the inflated change's: its type, its length, its data.
            let mut length = Vec::with_capacity(10);
            write_uleb(&mut length, inflated.len() as u64);
            let hash = Sha256::new().chain_update([1u8]).chain_update(&length).chain_update(&inflated).finalize();
            if hash[..4] != chunk.bytes[4..8] {
                return Err(BAD_CHECKSUM);
            }
            let mut budget = Budget(inflate_budget.saturating_sub(inflated.len() as u64));
            let mut cost = change_cost(&inflated, &mut budget)?;
            cost.inflated_bytes = inflated.len() as u64;
            cost
        }
        ChunkKind::Document => document_cost(data, &mut Budget(inflate_budget))?,
        ChunkKind::Bundle => bundle_cost(data, &mut Budget(inflate_budget))?,
    };
    cost.inflated_bytes = cost.inflated_bytes.max(data.len() as u64).saturating_add(header);
    Ok(cost)
}

/// Measures every chunk in a sync message's change entries (each entry may hold several chunks
/// back to back), sharing one inflation budget. Returns each chunk with its cost, and the total.
pub fn measure_all<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
    max_inflated_bytes: u64,
) -> Result<(Vec<(Chunk<'a>, Cost)>, Cost), ChunkError> {
    let mut measured = Vec::new();
    let mut total = Cost::default();
    for entry in entries {
        for chunk in split(entry)? {
            let left = max_inflated_bytes.saturating_sub(total.inflated_bytes);
            let cost = measure(&chunk, left)?;
            total.add(cost);
            if total.inflated_bytes > max_inflated_bytes {
                return Err(ChunkError::TooLarge { max: max_inflated_bytes });
            }
            measured.push((chunk, cost));
        }
    }
    Ok((measured, total))
}

/// Writes `value` as an unsigned LEB128 integer, as Automerge's chunks do.
pub fn write_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Writes `value` as a signed LEB128 integer, as Automerge's chunks do.
pub fn write_sleb(out: &mut Vec<u8>, mut value: i64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0) {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// How many more bytes may be inflated.
struct Budget(u64);

fn inflate(deflated: &[u8], budget: u64) -> Result<Vec<u8>, ChunkError> {
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(budget.saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|_| ChunkError::Malformed("deflated data does not inflate"))?;
    if inflated.len() as u64 > budget {
        return Err(ChunkError::TooLarge { max: budget });
    }
    Ok(inflated)
}

/// A change chunk's data: deps, actor, seq, start op, time, message, other actors, then the op
/// columns (never deflated in a change), then extra bytes.
fn change_cost(data: &[u8], budget: &mut Budget) -> Result<Cost, ChunkError> {
    let mut r = Reader::new(data);
    r.hashes()?;
    r.bytes()?; // actor
    r.uleb()?; // seq
    r.uleb()?; // start op
    r.sleb()?; // time
    r.bytes()?; // message
    let others = r.uleb()?;
    for _ in 0..others {
        r.bytes()?;
    }
    let columns = r.columns()?;
    let ops = r.column_rows(&columns, budget)?;
    Ok(Cost { changes: 1, ops, inflated_bytes: 0 })
}

/// A document chunk's data: actors, heads, change columns and op columns (both described before
/// either's data), then head indices.
fn document_cost(data: &[u8], budget: &mut Budget) -> Result<Cost, ChunkError> {
    let mut r = Reader::new(data);
    let actors = r.uleb()?;
    for _ in 0..actors {
        r.bytes()?;
    }
    r.hashes()?;
    let change_columns = r.columns()?;
    let op_columns = r.columns()?;
    let before = budget.0;
    let changes = r.column_rows(&change_columns, budget)?;
    let ops = r.column_rows(&op_columns, budget)?;
    Ok(Cost { changes, ops, inflated_bytes: data.len() as u64 + (before - budget.0) })
}

/// A bundle's data: deps, actors, change columns and their data, op columns and their data.
fn bundle_cost(data: &[u8], budget: &mut Budget) -> Result<Cost, ChunkError> {
    let mut r = Reader::new(data);
    r.hashes()?;
    let actors = r.uleb()?;
    for _ in 0..actors {
        r.bytes()?;
    }
    let before = budget.0;
    let change_columns = r.columns()?;
    let changes = r.column_rows(&change_columns, budget)?;
    let op_columns = r.columns()?;
    let ops = r.column_rows(&op_columns, budget)?;
    Ok(Cost { changes, ops, inflated_bytes: data.len() as u64 + (before - budget.0) })
}

/// One column's description: its spec (id, deflate bit, type) and its length in bytes.
#[derive(Debug, Clone, Copy)]
struct Column {
    spec: u32,
    len: usize,
}

impl Column {
    fn deflated(&self) -> bool {
        self.spec & 0b1000 != 0
    }

    fn column_type(&self) -> u32 {
        self.spec & 0b111
    }
}

/// Column types (the low three bits of a spec).
const GROUP: u32 = 0;
const ACTOR: u32 = 1;
const INTEGER: u32 = 2;
const DELTA: u32 = 3;
const BOOLEAN: u32 = 4;
const STRING: u32 = 5;
const VALUE_METADATA: u32 = 6;

/// A cursor over bytes that never reads past them.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], ChunkError> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.at.checked_add(n))
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ChunkError::Malformed("a length runs past the end of the chunk"))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8, ChunkError> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64, ChunkError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ChunkError::Malformed("an integer longer than 64 bits"))
    }

    fn sleb(&mut self) -> Result<i64, ChunkError> {
        let mut value = 0i64;
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            if shift < 64 {
                value |= i64::from(byte & 0x7f) << shift;
            }
            shift += 7;
            if byte & 0x80 == 0 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
            if shift >= 70 {
                return Err(ChunkError::Malformed("an integer longer than 64 bits"));
            }
        }
    }

    /// A length-prefixed byte string.
    fn bytes(&mut self) -> Result<&'a [u8], ChunkError> {
        let len = self.uleb()?;
        self.take(len)
    }

    /// A count followed by that many 32-byte hashes.
    fn hashes(&mut self) -> Result<(), ChunkError> {
        let count = self.uleb()?;
        self.take(count.checked_mul(32).ok_or(ChunkError::Malformed("too many hashes"))?)?;
        Ok(())
    }

    /// Column descriptions: a count, then (spec, length) pairs. Each description takes at least
    /// two bytes, so the count is bounded by the input before anything is allocated.
    fn columns(&mut self) -> Result<Vec<Column>, ChunkError> {
        let count = self.uleb()?;
        if count > (self.bytes.len() - self.at) as u64 / 2 {
            return Err(ChunkError::Malformed("more columns than bytes to describe them"));
        }
        let mut columns = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let spec = u32::try_from(self.uleb()?).map_err(|_| ChunkError::Malformed("a column spec over 32 bits"))?;
            let len = usize::try_from(self.uleb()?).map_err(|_| ChunkError::Malformed("a column too long"))?;
            columns.push(Column { spec, len });
        }
        Ok(columns)
    }

    /// Reads the data of `columns` (back to back, in order) and returns the largest row count
    /// among them. Deflated columns are inflated first, charged to `budget`.
    fn column_rows(&mut self, columns: &[Column], budget: &mut Budget) -> Result<u64, ChunkError> {
        let mut rows = 0u64;
        for column in columns {
            let raw = self.take(column.len as u64)?;
            let inflated;
            let data = if column.deflated() {
                inflated = inflate(raw, budget.0)?;
                budget.0 -= inflated.len() as u64;
                &inflated[..]
            } else {
                raw
            };
            rows = rows.max(column_rows(column.column_type(), data)?);
        }
        Ok(rows)
    }
}

/// How many rows a column holds, by its encoding. Raw value columns hold bytes, not rows, and
/// count none (their bytes are bounded by the chunk's size).
fn column_rows(column_type: u32, data: &[u8]) -> Result<u64, ChunkError> {
    let mut r = Reader::new(data);
    let mut rows = 0u64;
    match column_type {
        GROUP | ACTOR | INTEGER | VALUE_METADATA => rle_rows(&mut r, &mut rows, |r| r.uleb().map(drop))?,
        DELTA => rle_rows(&mut r, &mut rows, |r| r.sleb().map(drop))?,
        STRING => rle_rows(&mut r, &mut rows, |r| r.bytes().map(drop))?,
        BOOLEAN => {
            // Run lengths, alternating false and true.
            while !r.done() {
                rows = rows.saturating_add(r.uleb()?);
            }
        }
        _ => {}
    }
    Ok(rows)
}

/// Counts the rows of a run-length-encoded column: a signed count, then one value repeated
/// (count > 0), that many literal values (count < 0), or a count of nulls (count = 0).
fn rle_rows(
    r: &mut Reader<'_>,
    rows: &mut u64,
    skip_value: impl Fn(&mut Reader<'_>) -> Result<(), ChunkError>,
) -> Result<(), ChunkError> {
    while !r.done() {
        let count = r.sleb()?;
        if count > 0 {
            skip_value(r)?;
            *rows = rows.saturating_add(count.unsigned_abs());
        } else if count < 0 {
            // Each literal takes at least a byte, so this loop is bounded by the input.
            for _ in 0..count.unsigned_abs() {
                skip_value(r)?;
            }
            *rows = rows.saturating_add(count.unsigned_abs());
        } else {
            *rows = rows.saturating_add(r.uleb()?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ObjType, ROOT};

    use super::*;

    fn doc_with(ops: usize) -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let map = tx.put_object(ROOT, "map", ObjType::Map).expect("a map");
        for i in 0..ops {
            tx.put(&map, format!("k{i}"), i as i64).expect("put");
        }
        tx.commit();
        doc
    }

    #[test]
    fn a_change_and_a_document_are_measured_as_automerge_decodes_them() {
        let mut doc = doc_with(1_000);
        let change = doc.get_last_local_change().expect("a change").raw_bytes().to_vec();
        let chunks = split(&change).expect("one chunk");
        assert_eq!(chunks.len(), 1);
        let cost = measure(&chunks[0], u64::MAX).expect("measured");
        assert_eq!((cost.changes, cost.ops), (1, 1_001));
        assert_eq!(chunks[0].change_hash(), Some(doc.get_heads()[0].0));

        let mut tx = doc.transaction();
        tx.put(ROOT, "more", "x").expect("put");
        tx.commit();
        let saved = doc.save();
        let cost = measure(&split(&saved).expect("one chunk")[0], u64::MAX).expect("measured");
        assert_eq!((cost.changes, cost.ops), (2, 1_002));
        assert!(cost.inflated_bytes >= saved.len() as u64, "{cost:?}");
    }

    #[test]
    fn a_compressed_change_is_measured_and_its_checksum_checked() {
        let doc = doc_with(2_000);
        let mut change = doc.get_last_local_change().expect("a change").clone();
        let compressed = change.bytes().to_vec();
        let chunk = split(&compressed).expect("a chunk")[0];
        assert_eq!(chunk.kind, ChunkKind::CompressedChange);
        let cost = measure(&chunk, u64::MAX).expect("measured");
        assert_eq!((cost.changes, cost.ops), (1, 2_001));
        assert!(cost.inflated_bytes > compressed.len() as u64);
        let mut tampered = compressed.clone();
        tampered[5] ^= 1;
        let chunk = split(&tampered).expect("a chunk")[0];
        assert!(matches!(measure(&chunk, u64::MAX), Err(ChunkError::Malformed(m)) if m.contains("bad checksum")));
    }

    #[test]
    fn a_compressed_document_is_measured_within_its_inflation_budget() {
        // Saved documents deflate their larger columns.
        let doc = doc_with(20_000);
        let saved = doc.save();
        let chunk = split(&saved).expect("a chunk")[0];
        let cost = measure(&chunk, u64::MAX).expect("measured");
        assert_eq!(cost.ops, 20_001);
        assert!(cost.inflated_bytes > saved.len() as u64, "something was deflated: {cost:?} vs {}", saved.len());
        assert_eq!(measure(&chunk, 100), Err(ChunkError::TooLarge { max: 100 }));
    }

    #[test]
    fn a_run_of_a_million_rows_costs_a_few_bytes_and_is_counted() {
        // One run of 2^20 copies of the value 1: the shape of a decompression bomb.
        let mut column = Vec::new();
        write_sleb(&mut column, 1 << 20);
        column.push(1);
        assert_eq!(column_rows(INTEGER, &column), Ok(1 << 20));
        // A null run and a literal run.
        let mut column = vec![0];
        write_uleb(&mut column, 7);
        write_sleb(&mut column, -3);
        column.extend([1, 2, 3]);
        assert_eq!(column_rows(ACTOR, &column), Ok(10));
        // Booleans: 5 false, 2 true.
        assert_eq!(column_rows(BOOLEAN, &[5, 2]), Ok(7));
    }

    #[test]
    fn garbage_never_panics_and_is_malformed() {
        assert_eq!(split(&[]), Ok(vec![]));
        assert!(split(&[1, 2, 3]).is_err());
        let mut header = MAGIC.to_vec();
        header.extend([0, 0, 0, 0, 1]);
        let mut huge = header.clone();
        huge.extend([0xff; 12]);
        assert!(split(&huge).is_err(), "a length that overflows");
        let mut short = header.clone();
        short.extend([5, 1, 2]);
        assert!(split(&short).is_err(), "a length past the end");
        let mut two = header.clone();
        two.extend([1, 42]);
        two.extend(&header);
        two.extend([0]);
        assert_eq!(split(&two).map(|c| c.len()), Ok(2));
        // A change chunk whose body is noise.
        let mut x = 0x1234_5678u64;
        for len in 0..200 {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for kind in 0..4u8 {
                let mut chunk = header.clone();
                chunk[8] = kind;
                chunk.truncate(9);
                write_uleb(&mut chunk, body.len() as u64);
                chunk.extend(&body);
                if let Ok(chunks) = split(&chunk) {
                    let _ = measure(&chunks[0], 1 << 20);
                }
            }
        }
    }
}
