//! Embeds the browser client (`client-wasm/dist`, built by `just client`) into the server binary.
//!
//! Every file but `index.html` is served under a content-hashed name, `/assets/<stem>-<hash>.<ext>`,
//! with a gzip copy made here once. In `index.html`, `@@<file name>@@` is replaced by the file's
//! hashed URL. Without a built client the server still builds and serves a page that says how to
//! build it.

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
        let short: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
        let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, ""));
        let url = format!("/assets/{stem}-{short}.{ext}");
        let gz = out.join(format!("{name}.gz"));
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes).expect("gzip into memory");
        fs::write(&gz, encoder.finish().expect("gzip into memory")).expect("OUT_DIR is writable");
        writeln!(
            code,
            "    Asset {{ url: {url:?}, content_type: {ct:?}, body: include_bytes!({path:?}), gzip: include_bytes!({gz:?}) }},",
            ct = content_type(ext),
            path = path.display().to_string(),
            gz = gz.display().to_string(),
        )
        .expect("write to String");
        urls.push((name, url));
    }
    code.push(']');

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
    let version: String = Sha256::digest(urls.iter().map(|(_, url)| url.as_str()).collect::<String>())[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
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

fn content_type(ext: &str) -> &'static str {
    match ext {
        "js" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

const MISSING_CLIENT: &str = "<!doctype html><meta charset=utf-8><title>Hindsight</title>\
<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Hindsight</h1>\
<p>This server was built without its browser client. Build it with <code>./justw run</code>.</p>";
