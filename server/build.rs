//! Embeds the browser client (`client-wasm/dist`, built by `just client`) into the server binary.
//!
//! Every file but `index.html` is served under a content-hashed name, `/assets/<stem>-<hash>.<ext>`,
//! with brotli and gzip copies made here once (see [`compressed_copies`]). In `index.html`,
//! `@@<file name>@@` is replaced by the file's hashed URL. Without a built client the server still
//! builds and serves a page that says how to build it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use base64::Engine as _;
use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist =
        env::var_os("HINDSIGHT_CLIENT_DIST").map(PathBuf::from).unwrap_or_else(|| manifest.join("../client-wasm/dist"));
    println!("cargo:rerun-if-env-changed=HINDSIGHT_CLIENT_DIST");
    println!("cargo:rerun-if-changed={}", dist.display());

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut code = String::from("&[\n");
    let mut index = None;
    let mut worker = None;
    let mut urls = Vec::new();
    let copies = out.join("compressed");
    fs::create_dir_all(&copies).expect("OUT_DIR is writable");
    let mut kept = Vec::new();

    let mut files: Vec<PathBuf> = fs::read_dir(&dist)
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().and_then(|n| n.to_str()).expect("dist file names are UTF-8").to_owned();
        if name == "index.html" {
            index = Some(fs::read_to_string(path).expect("index.html is readable UTF-8"));
            continue;
        }
        if name == "sw.js" {
            worker = Some(fs::read_to_string(path).expect("sw.js is readable UTF-8"));
            continue;
        }
        let bytes = fs::read(path).expect("dist files are readable");
        let hash = Sha256::digest(&bytes);
        let short = hex(&hash[..6]);
        let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
        let url = format!("/assets/{stem}-{short}.{ext}");
        let (content_type, compressible) = kind(ext);
        let (brotli, gzip) = if compressible && bytes.len() >= MIN_COMPRESSED_BYTES {
            compressed_copies(&copies, &hash, &bytes, &mut kept)
        } else {
            (None, None)
        };
        writeln!(
            code,
            "    Asset {{ url: {url:?}, content_type: {content_type:?}, body: include_bytes!({path:?}), \
             brotli: {brotli}, gzip: {gzip} }},",
            path = path.display().to_string(),
            brotli = included(brotli.as_deref()),
            gzip = included(gzip.as_deref()),
        )
        .expect("write to String");
        urls.push((name, url));
    }
    code.push(']');
    forget_other_copies(&copies, &kept);

    let index = match index {
        Some(mut html) => {
            for (name, url) in &urls {
                html = html.replace(&format!("@@{name}@@"), url);
            }
            html
        }
        None => {
            println!("cargo:warning=no browser client in {}; run `just client` to build it", dist.display());
            MISSING_CLIENT.to_owned()
        }
    };
    // The service worker is served at /sw.js (its scope is the whole site), never hashed, with
    // the asset list it caches and a version that changes with any asset.
    let version = hex(&Sha256::digest(urls.iter().map(|(_, url)| url.as_str()).collect::<String>())[..6]);
    let asset_list = format!("[{}]", urls.iter().map(|(_, url)| format!("{url:?}")).collect::<Vec<_>>().join(", "));
    let worker = worker
        .map(|js| js.replace("@@VERSION@@", &version).replace("@@ASSETS@@", &asset_list))
        .unwrap_or_else(|| "// No client was built, so nothing is cached.\n".to_owned());
    // The page's one inline script (the loader), by hash, for its Content-Security-Policy.
    let script = index
        .split_once("<script type=\"module\">")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(script, _)| script);
    let hash =
        format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes())));
    write(&out.join("inline_script_hash"), &hash);
    write(&out.join("assets.rs"), &code);
    write(&out.join("index.html"), &index);
    write(&out.join("sw.js"), &worker);
}

fn write(path: &Path, text: &str) {
    // Only rewrite on change, so unchanged assets do not rebuild the server.
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).expect("OUT_DIR is writable");
    }
}

/// Brotli's quality for the precompressed copies: the best that stays cheap in a build script.
/// Build scripts run unoptimised, and brotli's encoder is generic, so it is compiled into this
/// script at opt-level 0. On the 2.1 MB client that way, quality 9 takes 2.9 s (630 KB), 10 takes
/// 25 s (584 KB) and 11 takes 32 s (561 KB); gzip takes 0.8 s (750 KB).
const BROTLI_QUALITY: u32 = 9;
/// gzip's level (the best).
const GZIP_LEVEL: u32 = 9;
/// Smaller files are sent as they are: they fit in a packet or two either way, and a copy would
/// save less than its headers cost.
const MIN_COMPRESSED_BYTES: usize = 1024;

/// The brotli and gzip copies of `bytes` (whose SHA-256 is `hash`) in `dir`, each only if it is
/// worth serving. Copies are named by the content's hash and the settings, so a file that did not
/// change is not compressed again when `just client` writes it anew.
fn compressed_copies(
    dir: &Path,
    hash: &[u8],
    bytes: &[u8],
    kept: &mut Vec<PathBuf>,
) -> (Option<PathBuf>, Option<PathBuf>) {
    let hash = hex(hash);
    let brotli = cached(&dir.join(format!("{hash}.q{BROTLI_QUALITY}.br")), bytes, kept, |bytes| {
        let params = brotli::enc::BrotliEncoderParams {
            quality: BROTLI_QUALITY as i32,
            size_hint: bytes.len(),
            ..Default::default()
        };
        let mut copy = Vec::new();
        brotli::BrotliCompress(&mut &bytes[..], &mut copy, &params).expect("brotli into memory");
        copy
    });
    let gzip = cached(&dir.join(format!("{hash}.l{GZIP_LEVEL}.gz")), bytes, kept, |bytes| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
        encoder.write_all(bytes).expect("gzip into memory");
        encoder.finish().expect("gzip into memory")
    });
    (brotli, gzip)
}

/// The copy of `original` at `path`, made by `compress` unless an earlier run left it there, or
/// `None` when it is not worth serving: a copy must save at least a tenth of the bytes, so a
/// client never gets a compressed copy larger than the file, nor one that costs decoding for
/// almost nothing.
fn cached(
    path: &Path,
    original: &[u8],
    kept: &mut Vec<PathBuf>,
    compress: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Option<PathBuf> {
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(_) => {
            let copy = compress(original);
            // Written under another name first, so an interrupted build never leaves half a copy
            // under the name the next run trusts.
            let partial = path.with_extension("partial");
            fs::write(&partial, &copy).expect("OUT_DIR is writable");
            fs::rename(&partial, path).expect("OUT_DIR is writable");
            copy.len() as u64
        }
    };
    kept.push(path.to_owned());
    (size * 10 <= original.len() as u64 * 9).then(|| path.to_owned())
}

/// Deletes the copies in `dir` that no file of this client needs (those of earlier builds).
fn forget_other_copies(dir: &Path, kept: &[PathBuf]) {
    for entry in fs::read_dir(dir).expect("OUT_DIR is readable").filter_map(|e| e.ok()) {
        if !kept.contains(&entry.path()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The Rust expression for an optional embedded copy.
fn included(copy: Option<&Path>) -> String {
    match copy {
        Some(path) => format!("Some(include_bytes!({:?}))", path.display().to_string()),
        None => "None".to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file's content type, by its extension, and whether it compresses (PNG is compressed
/// already).
fn kind(ext: &str) -> (&'static str, bool) {
    match ext {
        "js" => ("text/javascript; charset=utf-8", true),
        "wasm" => ("application/wasm", true),
        "css" => ("text/css; charset=utf-8", true),
        "svg" => ("image/svg+xml", true),
        "png" => ("image/png", false),
        "ico" => ("image/x-icon", true),
        "json" => ("application/json", true),
        _ => ("application/octet-stream", false),
    }
}

const MISSING_CLIENT: &str = "<!doctype html><meta charset=utf-8><title>Hindsight</title>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Hindsight</h1>\
<p>This server was built without its browser client. Build it with <code>./justw run</code>.</p>";
