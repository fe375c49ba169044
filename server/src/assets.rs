//! The browser client, embedded in the binary at build time (see `build.rs`).

/// One embedded file, served at a content-hashed URL.
#[derive(Debug)]
pub struct Asset {
    pub url: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same bytes, gzip-compressed at build time.
    pub gzip: &'static [u8],
}

/// Every embedded file but the page itself.
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The page shell that loads the client, for `/` and `/b/{board_id}`.
pub static INDEX_HTML: &str = include_str!(concat!(env!("OUT_DIR"), "/index.html"));

/// The hash of the page's inline loader script (`sha256-...`), for its Content-Security-Policy.
pub static INLINE_SCRIPT_HASH: &str = include_str!(concat!(env!("OUT_DIR"), "/inline_script_hash"));

/// The service worker that keeps the app shell for offline use, served at `/sw.js`.
pub static SERVICE_WORKER: &str = include_str!(concat!(env!("OUT_DIR"), "/sw.js"));

/// The embedded file served at `url`.
pub fn find(url: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.url == url)
}
