//! The browser client, embedded in the binary at build time (see `build.rs`), and which of its
//! copies (brotli, gzip, as it is) a request gets.

/// One embedded file, served at a content-hashed URL.
#[derive(Debug)]
pub struct Asset {
    pub url: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// The same bytes, brotli-compressed at build time; `None` when that is not worth it (a small
    /// file, an image compressed already, a copy that would save less than a tenth).
    pub brotli: Option<&'static [u8]>,
    /// The same bytes, gzip-compressed at build time; `None` as for `brotli`.
    pub gzip: Option<&'static [u8]>,
}

/// A content coding the server sends assets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    /// Its name in `Accept-Encoding` and `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }
}

impl Asset {
    /// The copy to send to a request whose `Accept-Encoding` headers say `accept`, and its coding.
    ///
    /// The copy the client wants most (by `q`) wins, ties going to the smaller: brotli, then gzip,
    /// then the file as it is. Without the header, or when nothing it names is acceptable, the file
    /// goes as it is (RFC 9110, section 12.5.3).
    pub fn negotiate(&self, accept: &[&str]) -> (&'static [u8], Encoding) {
        if accept.is_empty() {
            return (self.body, Encoding::Identity);
        }
        let offers =
            [(self.brotli, Encoding::Brotli), (self.gzip, Encoding::Gzip), (Some(self.body), Encoding::Identity)];
        let mut best = (self.body, Encoding::Identity, 0);
        for (copy, encoding) in offers {
            let q = quality(accept, encoding);
            if let Some(copy) = copy
                && q > best.2
            {
                best = (copy, encoding, q);
            }
        }
        (best.0, best.1)
    }
}

/// How much `accept` (the values of `Accept-Encoding` headers) wants `encoding`, in thousandths:
/// its own entry's `q`, else the `*` entry's, else 0, except that identity, unless excluded, is
/// acceptable as a last resort (1). Malformed entries are ignored.
fn quality(accept: &[&str], encoding: Encoding) -> u16 {
    let (mut own, mut any) = (None, None);
    for entry in accept.iter().flat_map(|value| value.split(',')) {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let Some(q) = parts.try_fold(1000, |q, param| match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("q") => parse_q(value.trim()),
            _ => Some(q),
        }) else {
            continue;
        };
        let named = coding.eq_ignore_ascii_case(encoding.name())
            || (encoding == Encoding::Gzip && coding.eq_ignore_ascii_case("x-gzip"));
        if named {
            own = own.max(Some(q));
        } else if coding == "*" {
            any = any.max(Some(q));
        }
    }
    own.or(any).unwrap_or(if encoding == Encoding::Identity { 1 } else { 0 })
}

/// A `q` value (`0`, `0.5`, `1.000`: at most three decimals, at most 1) in thousandths.
fn parse_q(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.len() != 1 || fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    static BOTH: Asset = Asset {
        url: "/assets/a.js",
        content_type: "text/javascript",
        body: b"body",
        brotli: Some(b"br"),
        gzip: Some(b"gz"),
    };

    fn check(accept: &[&str], expected: Encoding) {
        assert_eq!(BOTH.negotiate(accept).1, expected, "Accept-Encoding: {accept:?}");
    }

    #[test]
    fn the_best_coding_the_client_accepts_wins_and_q_0_refuses() {
        check(&["gzip, deflate, br, zstd"], Encoding::Brotli);
        check(&["gzip, deflate"], Encoding::Gzip);
        check(&["br;q=0, gzip;q=0"], Encoding::Identity);
        check(&["br;q=0.0, GZIP"], Encoding::Gzip);
        check(&["br;q=0.5, gzip"], Encoding::Gzip);
        check(&["br;q=0.5, gzip;q=0.5"], Encoding::Brotli);
        check(&["x-gzip"], Encoding::Gzip);
        check(&["gzip", "br"], Encoding::Brotli);
        check(&["*"], Encoding::Brotli);
        check(&["*;q=0, identity"], Encoding::Identity);
        check(&["*;q=0.1, br;q=0"], Encoding::Gzip);
        check(&["identity;q=0, br;q=0"], Encoding::Identity);
        check(&[], Encoding::Identity);
        check(&[""], Encoding::Identity);
        check(&["deflate, zstd"], Encoding::Identity);
    }

    #[test]
    fn malformed_q_values_are_ignored() {
        check(&["br;q=2, gzip"], Encoding::Gzip);
        check(&["br;q=0.0001, gzip"], Encoding::Gzip);
        check(&["br;q=, gzip"], Encoding::Gzip);
        check(&["br;q=-1, gzip"], Encoding::Gzip);
        check(&["br;q=1.5, gzip"], Encoding::Gzip);
        assert_eq!((parse_q("0.25"), parse_q("1.000"), parse_q("1.001")), (Some(250), Some(1000), None));
    }

    #[test]
    fn a_missing_copy_is_never_sent() {
        let plain = Asset { brotli: None, gzip: None, ..BOTH };
        assert_eq!(plain.negotiate(&["br, gzip"]), (&b"body"[..], Encoding::Identity));
        let gzip_only = Asset { brotli: None, ..BOTH };
        assert_eq!(gzip_only.negotiate(&["br, gzip"]), (&b"gz"[..], Encoding::Gzip));
    }

    #[test]
    fn every_embedded_copy_is_smaller_than_its_file() {
        for asset in ASSETS {
            for copy in [asset.brotli, asset.gzip].into_iter().flatten() {
                assert!(
                    copy.len() * 10 <= asset.body.len() * 9,
                    "{}: {} of {} bytes",
                    asset.url,
                    copy.len(),
                    asset.body.len()
                );
            }
        }
    }
}
