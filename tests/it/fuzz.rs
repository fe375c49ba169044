//! Fuzzing the wire-protocol decoder (issue 4): the corpus in `tests/corpus/wire` (one frame per
//! file: every message type, as a stock automerge-repo client sends it, and malformed frames),
//! mutated at random by proptest. Decoding never panics, and whatever decodes encodes back to a
//! frame that decodes the same.
//!
//! `HINDSIGHT_FUZZ_CASES` sets how many mutated frames are tried; the test command runs a short
//! pass, `just fuzz` a long one. The change validator is fuzzed beside the board core, in
//! `server/src/board/core.rs`. A frame that once broke the decoder belongs in the corpus.

use std::path::PathBuf;

use hindsight_shared::protocol::WireMessage;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/wire");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus {} is readable: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a corpus entry").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("a corpus file"))
        })
        .collect();
    files.sort();
    files
}

fn cases(default: u32) -> u32 {
    std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(default)
}

/// Decodes a frame and, if it decodes, checks that its encoding decodes the same.
fn check_frame(frame: &[u8]) -> Result<bool, TestCaseError> {
    match WireMessage::decode(frame) {
        Ok(message) => {
            let again = WireMessage::decode(&message.encode());
            prop_assert_eq!(again.as_ref(), Ok(&message), "re-encoding changed the message");
            Ok(true)
        }
        Err(e) => {
            prop_assert!(!e.to_string().is_empty(), "an error says what is wrong");
            Ok(false)
        }
    }
}

#[test]
fn the_corpus_decodes_as_its_names_say() {
    let corpus = corpus();
    assert!(corpus.len() >= 20, "the corpus holds {} frames", corpus.len());
    for (name, frame) in &corpus {
        let decoded = WireMessage::decode(frame);
        // Seeds named after a message type are that message; the others are malformed.
        let kind =
            name.trim_end_matches(".cbor").trim_end_matches("-with-metadata").trim_end_matches("-unknown-fields");
        if name.ends_with(".cbor") && decoded.as_ref().is_ok_and(|m| m.kind() == kind) {
            continue;
        }
        let malformed = !["join", "peer", "leave", "request", "sync", "doc-unavailable", "ephemeral", "error"]
            .iter()
            .any(|k| name == &format!("{k}.cbor"));
        assert!(malformed, "{name} should decode as `{kind}`, got {decoded:?}");
        assert!(check_frame(frame).is_ok(), "{name}");
    }
}

/// One change to a frame.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    /// Appends part of another corpus frame.
    Splice(usize, usize),
    /// Repeats a slice in place.
    Repeat(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), prop_oneof![any::<u8>(), Just(0xff), Just(0x1b), Just(0x5b), Just(0xbf)])
            .prop_map(|(at, b)| Mutation::SetByte(at, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..12)).prop_map(|(at, b)| Mutation::Insert(at, b)),
        (any::<usize>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(other, at)| Mutation::Splice(other, at)),
        (any::<usize>(), 1usize..32).prop_map(|(at, n)| Mutation::Repeat(at, n)),
    ]
}

fn mutate(corpus: &[(String, Vec<u8>)], seed: usize, mutations: &[Mutation]) -> Vec<u8> {
    let mut frame = corpus[seed % corpus.len()].1.clone();
    for m in mutations {
        let len = frame.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match m {
            Mutation::FlipBit(i, bit) if len > 0 => frame[at(*i)] ^= 1 << bit,
            Mutation::SetByte(i, b) if len > 0 => frame[at(*i)] = *b,
            Mutation::Insert(i, bytes) => {
                let i = at(*i);
                frame.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let i = at(*i);
                frame.drain(i..(i + n).min(len));
            }
            Mutation::Truncate(i) => frame.truncate(at(*i)),
            Mutation::Splice(other, i) => {
                let other = &corpus[other % corpus.len()].1;
                if !other.is_empty() {
                    frame.extend_from_slice(&other[i % other.len()..]);
                }
            }
            Mutation::Repeat(i, n) if len > 0 => {
                let i = at(*i);
                let slice: Vec<u8> = frame[i..(i + n).min(len)].to_vec();
                frame.splice(i..i, slice);
            }
            _ => {}
        }
    }
    frame
}

#[test]
fn mutated_frames_never_panic_the_decoder_and_round_trip() {
    let corpus = corpus();
    let cases = cases(3_000);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let (decoded, refused) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let strategy = (any::<usize>(), proptest::collection::vec(mutation(), 1..3));
    let result = runner.run(&strategy, |(seed, mutations)| {
        let frame = mutate(&corpus, seed, &mutations);
        let cell = if check_frame(&frame)? { &decoded } else { &refused };
        cell.set(cell.get() + 1);
        Ok(())
    });
    if let Err(e) = result {
        panic!("a mutated frame broke the decoder: {e}");
    }
    eprintln!(
        "wire decoder fuzz: {} frames from {} seeds, {} decoded and round-tripped, {} refused with an error",
        decoded.get() + refused.get(),
        corpus.len(),
        decoded.get(),
        refused.get()
    );
    assert!(decoded.get() > 0 && refused.get() > 0, "the mutations reach both outcomes");
}
