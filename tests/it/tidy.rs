//! Tidy: the conventions that keep the code and ARCHITECTURE.md true to each other, checked on
//! every run (rust-analyzer's `xtask/src/tidy.rs` is the model).
//!
//! - Every `.rs` file opens with a `//!` line saying what it owns.
//! - Every source file is in the code map, under its crate, by its path in the crate.
//! - Every route of the server is in ARCHITECTURE.md as `METHOD /path`.
//! - The close-code table lists exactly the server's close reasons.
//! - The wire-protocol section is pinned to a hash of `protocol.rs` and `presence.rs`: the
//!   protocol cannot change without someone rereading its description.
//! - The invariants that are absences (the board core imports no I/O, `shared` knows no I/O, the
//!   bench never links the server) hold, and each is written in its module's doc.
//! - No test carries the attribute that skips it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use hindsight_server::closing::CloseReason;
use sha2::{Digest, Sha256};

/// The crates and other source roots, each with the heading of its part of the code map.
const CRATES: &[(&str, &str)] = &[
    ("shared", "### `shared/`"),
    ("server", "### `server/`"),
    ("client-wasm", "### `client-wasm/`"),
    ("tests", "### `tests/`"),
    ("bench", "### `bench/`"),
];

/// Absences the architecture relies on: files (or folders) that must not mention a name. Each
/// governing module says so in its own doc, in a paragraph that starts "Invariant".
const ABSENCES: &[Absence] = &[
    Absence {
        tag: "board-core-sans-io",
        files: &[
            "server/src/board/core.rs",
            "server/src/board/replica.rs",
            "server/src/board/guards.rs",
            "server/src/board/govern.rs",
            "server/src/board/presence.rs",
            "server/src/board/desk.rs",
        ],
        governed_by: "server/src/board/core.rs",
        forbidden: &[
            "crate::store",
            "crate::registry",
            "crate::connection",
            "crate::http",
            "crate::clock",
            "tokio",
            "SystemTime",
            "super::super",
        ],
        why: "the board core is sans-IO: no storage, registry, sockets, tasks or clock",
    },
    Absence {
        tag: "board-knows-no-keeper",
        files: &["server/src/board/"],
        governed_by: "server/src/board/mod.rs",
        forbidden: &["crate::registry", "crate::connection", "crate::http"],
        why: "a board reaches its keeper and its peers only through `Keeper` and `PeerLink`",
    },
    Absence {
        tag: "handle-only",
        files: &["server/src/http.rs", "server/src/connection.rs"],
        governed_by: "server/src/registry.rs",
        forbidden: &["crate::board::actor", "BoardActor", "BoardCore"],
        why: "routes and connections reach a board only through the handle the registry gives",
    },
    Absence {
        tag: "connection-stores-nothing",
        files: &["server/src/connection.rs"],
        governed_by: "server/src/connection.rs",
        forbidden: &["crate::store", "Store"],
        why: "a connection stores nothing: what it receives is stored by its board, before anyone hears of it",
    },
    Absence {
        tag: "shared-sans-io",
        files: &["shared/src/"],
        governed_by: "shared/src/lib.rs",
        forbidden: &["tokio", "std::net", "std::fs", "std::thread", "SystemTime", "Instant::now"],
        why: "`shared` is sans-IO and builds for wasm32: callers pass time in",
    },
    Absence {
        tag: "team-core-sans-io",
        files: &["server/src/team/core.rs"],
        governed_by: "server/src/team/core.rs",
        forbidden: &[
            "crate::store",
            "crate::registry",
            "crate::connection",
            "crate::http",
            "crate::clock",
            "tokio",
            "SystemTime",
        ],
        why: "the team core is sans-IO: no storage, registry, sockets, tasks or clock",
    },
    Absence {
        tag: "team-knows-no-board",
        files: &["server/src/team/"],
        governed_by: "server/src/team/mod.rs",
        forbidden: &["crate::registry", "crate::connection", "crate::http", "BoardCore", "Board::read"],
        why: "a team hears from boards in messages and never reads a board's document",
    },
    Absence {
        tag: "bench-is-a-client",
        files: &["bench/Cargo.toml"],
        governed_by: "bench/src/main.rs",
        forbidden: &["hindsight-server", "hindsight-tests"],
        why: "the bench speaks only the wire protocol and HTTP, like any other client",
    },
];

struct Absence {
    /// The name the governing module's doc gives the invariant, as `tidy: <tag>`.
    tag: &'static str,
    files: &'static [&'static str],
    governed_by: &'static str,
    forbidden: &'static [&'static str],
    why: &'static str,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Every `.rs` file under `dir`, skipping build output and dependencies.
fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() {
                if !["target", "node_modules", "dist", "reference", "corpus"].contains(&name) && !name.starts_with('.')
                {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A part of ARCHITECTURE.md: from `heading` to the next heading of the same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> anyhow::Result<&'a str> {
    let start = doc.find(&format!("\n{heading}")).with_context(|| format!("ARCHITECTURE.md has no `{heading}`"))?;
    let level = heading.split(' ').next().unwrap_or("#").len();
    let body = &doc[start + 1..];
    // The section ends at the next heading of its level or higher, outside fenced code.
    let mut fenced = false;
    let mut end = body.len();
    let mut at = 0;
    for (i, line) in body.split_inclusive('\n').enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if i > 0 && !fenced && line.starts_with('#') {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            if hashes <= level && line[hashes..].starts_with(' ') {
                end = at;
                break;
            }
        }
        at += line.len();
    }
    Ok(&body[..end])
}

fn architecture() -> anyhow::Result<String> {
    read(&root().join("ARCHITECTURE.md"))
}

#[test]
fn every_rust_file_opens_with_a_doc_line() -> anyhow::Result<()> {
    let root = root();
    let mut missing = Vec::new();
    for (krate, _) in CRATES {
        for file in rust_files(&root.join(krate))? {
            if !read(&file)?.starts_with("//!") {
                missing.push(file.strip_prefix(&root)?.display().to_string());
            }
        }
    }
    ensure!(missing.is_empty(), "these files do not open with a `//!` line saying what they own: {missing:?}");
    Ok(())
}

#[test]
fn every_source_file_is_in_the_code_map() -> anyhow::Result<()> {
    let root = root();
    let doc = architecture()?;
    let map = section(&doc, "## Code map")?;
    let mut missing = Vec::new();
    for (krate, heading) in CRATES {
        let part = section(map, heading)?;
        for file in rust_files(&root.join(krate))? {
            // Named by its path in the crate, without the `src/` every crate but the tests has.
            let path = file.strip_prefix(root.join(krate))?.to_string_lossy().replace('\\', "/");
            let name = if *krate == "tests" { path.clone() } else { path.trim_start_matches("src/").to_owned() };
            if !part.contains(&format!("`{name}`")) {
                missing.push(format!("{krate}/{path} (as `{name}` under {heading})"));
            }
        }
    }
    ensure!(missing.is_empty(), "ARCHITECTURE.md's code map does not name these files: {missing:#?}");
    Ok(())
}

#[test]
fn every_route_is_in_the_architecture() -> anyhow::Result<()> {
    let routes = routes()?;
    let doc = architecture()?;
    let path_char = |c: char| c.is_ascii_alphanumeric() || "/{}_-.".contains(c);
    let missing: Vec<&String> = routes
        .iter()
        .filter(|route| {
            !doc.match_indices(route.as_str())
                .any(|(at, _)| !doc[at + route.len()..].chars().next().is_some_and(path_char))
        })
        .collect();
    ensure!(missing.is_empty(), "ARCHITECTURE.md does not mention these routes (as `METHOD /path`): {missing:?}");
    Ok(())
}

/// Every route of the router in `http.rs`, as `METHOD /path`, one per method.
fn routes() -> anyhow::Result<Vec<String>> {
    let http = read(&root().join("server/src/http.rs"))?;
    for other in [".route_service(", ".nest(", ".nest_service(", ".merge(", ".fallback("] {
        ensure!(!http.contains(other), "http.rs uses `{other}`: teach tidy to read it, so its routes are checked too");
    }
    let calls = http.matches(".route(").count();
    let mut paths = 0;
    let mut routes = Vec::new();
    for call in http.split(".route(\"").skip(1) {
        let (path, rest) = call.split_once('"').context("a route's path")?;
        paths += 1;
        // The method router: up to the next layer (the split already ends at the next route).
        let methods = rest.split(".layer(").next().unwrap_or_default();
        let mut found = false;
        for method in ["get", "post", "put", "patch", "delete"] {
            let named = [format!(" {method}("), format!(",{method}("), format!(".{method}(")];
            if named.iter().any(|n| methods.contains(n.as_str())) {
                routes.push(format!("{} {path}", method.to_uppercase()));
                found = true;
            }
        }
        ensure!(found, "tidy cannot read the methods of the route `{path}`");
    }
    ensure!(paths == calls, "every `.route(` in http.rs takes its path as a string literal, so tidy can read it");
    ensure!(routes.len() >= 10, "tidy found too few routes ({routes:?}): has the router moved?");
    Ok(routes)
}

#[test]
fn the_api_contract_names_the_servers_routes() -> anyhow::Result<()> {
    use hindsight_shared::api;
    let routes = routes()?;
    let board = "{board_id}";
    let export = api::export(board, "md");
    let export = export.split('?').next().unwrap_or_default();
    for expected in [
        format!("POST {}", api::BOARDS),
        format!("GET {}", api::TEMPLATES),
        format!("POST {}", api::participants(board)),
        format!("POST {}", api::facilitator(board)),
        format!("GET {export}"),
        format!("GET {}", api::board_page(board)),
    ] {
        ensure!(
            routes.contains(&expected),
            "`shared::api` calls `{expected}`, which the server does not route: {routes:?}"
        );
    }
    Ok(())
}

#[test]
fn the_close_code_table_lists_exactly_the_servers_reasons() -> anyhow::Result<()> {
    let source = read(&root().join("server/src/closing.rs"))?;
    let declared =
        source.lines().filter(|line| line.trim_start().starts_with("pub const ") && line.contains(": Self =")).count();
    ensure!(
        declared == CloseReason::ALL.len(),
        "closing.rs declares {declared} reasons but `CloseReason::ALL` lists {}",
        CloseReason::ALL.len()
    );
    ensure!(
        CloseReason::ALL.iter().all(|r| CloseReason::ALL.iter().filter(|o| *o == r).count() == 1),
        "`CloseReason::ALL` lists a reason twice"
    );
    let doc = architecture()?;
    let table = section(&doc, "### Close codes")?;
    let rows: Vec<(u16, String)> = table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            Some((cells.get(1)?.parse().ok()?, (*cells.get(2)?).to_owned()))
        })
        .collect();
    let mut expected: Vec<(u16, String)> = CloseReason::ALL.iter().map(|r| (r.code, r.reason.to_owned())).collect();
    let mut found = rows.clone();
    expected.sort();
    found.sort();
    ensure!(
        found == expected,
        "the table under `### Close codes` in ARCHITECTURE.md must list every `CloseReason` once, code and reason \
         as in closing.rs.\n  table: {found:?}\n  code:  {expected:?}"
    );
    Ok(())
}

/// The hash the wire-protocol section is pinned to.
fn protocol_hash() -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    for file in ["shared/src/protocol.rs", "shared/src/presence.rs"] {
        hash.update(read(&root().join(file))?.replace("\r\n", "\n").as_bytes());
    }
    Ok(hash.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect())
}

#[test]
fn the_wire_protocol_section_is_pinned_to_the_protocol_it_describes() -> anyhow::Result<()> {
    let doc = architecture()?;
    let protocol = section(&doc, "## Wire protocol")?;
    let marker = "<!-- tidy: describes shared/src/protocol.rs and shared/src/presence.rs at ";
    let pinned = protocol
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once(" -->"))
        .map(|(hash, _)| hash.trim())
        .context("the `## Wire protocol` section of ARCHITECTURE.md lacks its tidy marker")?;
    let now = protocol_hash()?;
    if pinned != now {
        bail!(
            "shared/src/protocol.rs or shared/src/presence.rs changed since the `## Wire protocol` section of \
             ARCHITECTURE.md was last checked against them. Reread the section, bring it up to date, then \
             pin it again: replace `{pinned}` with `{now}` in its tidy marker."
        );
    }
    Ok(())
}

/// The code of a file, as tidy compares it: comments gone, whitespace gone, and each grouped
/// import (`crate::{a::B, c}`) also written out path by path (`crate::a::B`, `crate::c`), so a
/// name cannot hide behind formatting.
fn code_of(file: &Path, text: &str) -> String {
    let comment = if file.extension().is_some_and(|e| e == "toml") { "#" } else { "//" };
    let code: String = text
        .lines()
        .map(|line| line.split(comment).next().unwrap_or_default())
        .collect::<String>()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut expanded = code.clone();
    for (at, _) in code.match_indices("::{") {
        let prefix_start =
            code[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
        let prefix = &code[prefix_start..at];
        let mut depth = 0;
        let mut item = String::new();
        for c in code[at + 3..].chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expanded.push_str(&format!(";{prefix}::{item}"));
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        expanded.push_str(&format!(";{prefix}::{item}"));
    }
    expanded
}

#[test]
fn the_architectures_absences_hold() -> anyhow::Result<()> {
    let root = root();
    let mut broken = Vec::new();
    for absence in ABSENCES {
        let governor = read(&root.join(absence.governed_by))?;
        // The module's doc as one line of prose, so a tag may wrap.
        let doc: String = governor
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim())
            .collect::<Vec<_>>()
            .join(" ");
        if !doc.contains(&format!("tidy: {}", absence.tag)) {
            broken.push(format!(
                "{} does not state its invariant ({}) with `tidy: {}`",
                absence.governed_by, absence.why, absence.tag
            ));
        }
        for target in absence.files {
            let files = if target.ends_with('/') { rust_files(&root.join(target))? } else { vec![root.join(target)] };
            for file in files {
                let code = code_of(&file, &read(&file)?);
                for name in absence.forbidden {
                    if code.contains(name) {
                        let file = file.strip_prefix(&root)?.display().to_string();
                        broken.push(format!("{file} uses `{name}`, but {}", absence.why));
                    }
                }
            }
        }
    }
    ensure!(broken.is_empty(), "{broken:#?}");
    Ok(())
}

#[test]
fn grouped_imports_and_formatting_do_not_hide_a_name() {
    let code = code_of(Path::new("x.rs"), "use crate::{\n    clock::now_ms,\n    store :: Store, // store\n};\n");
    assert!(code.contains("crate::store::Store"), "{code}");
    assert!(code.contains("crate::clock::now_ms"), "{code}");
    assert!(!code_of(Path::new("x.rs"), "// crate::store\nfn f() {}").contains("crate::store"));
    assert!(!code_of(Path::new("Cargo.toml"), "# hindsight-server\n").contains("hindsight-server"));
}

#[test]
fn no_test_is_ignored() -> anyhow::Result<()> {
    let root = root();
    let attribute = ["#[", "ignore"].concat();
    let mut ignored = Vec::new();
    for (krate, _) in CRATES {
        for file in rust_files(&root.join(krate))? {
            if read(&file)?.contains(&attribute) {
                ignored.push(file.strip_prefix(&root)?.display().to_string());
            }
        }
    }
    ensure!(ignored.is_empty(), "a test that does not run proves nothing: {ignored:?}");
    Ok(())
}
