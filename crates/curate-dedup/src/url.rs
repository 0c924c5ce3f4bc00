//! URL canonicalisation and a seeded, persistent Bloom filter for URL dedup.
//!
//! As a global operator, `url_dedup` keys records by [`url_key`] and keeps one survivor per key
//! (see [`crate::keep`]). Across runs, a [`BloomFilter`] saved with [`BloomFilter::save`] answers
//! "seen in an earlier run?" in constant memory, at the configured false-positive rate.

use std::path::Path;

use crate::error::{DedupError, Result};
use crate::fileformat::{FramedReader, FramedWriter};

/// What to do with a trailing `/` on a non-root path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailingSlash {
    /// `/a/b/` and `/a/b` stay distinct (some servers route them differently).
    Keep,
    /// `/a/b/` becomes `/a/b`; most sites serve the same page for both.
    #[default]
    Strip,
}

/// Canonicalisation choices; every field is documented with its rationale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlNormOptions {
    /// Drop a leading `www.` from the host (default true): `www.x.org` and `x.org` almost
    /// always serve the same content, and crawls mix both.
    pub strip_www: bool,
    /// Trailing slash policy on non-root paths (default [`TrailingSlash::Strip`]).
    pub trailing_slash: TrailingSlash,
    /// Sort `&`-separated query parameters byte-wise (default true): parameter order carries no
    /// meaning for nearly all sites, and generators emit them in arbitrary order.
    pub sort_query: bool,
}

impl Default for UrlNormOptions {
    fn default() -> Self {
        UrlNormOptions {
            strip_www: true,
            trailing_slash: TrailingSlash::Strip,
            sort_query: true,
        }
    }
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "http" | "ws" => Some("80"),
        "https" | "wss" => Some("443"),
        "ftp" => Some("21"),
        _ => None,
    }
}

/// Uppercases the hex digits of percent-escapes (RFC 3986 6.2.2.1) so `%2f` and `%2F` agree.
/// Escapes are not decoded: decoding reserved characters would change the URL's meaning.
fn push_percent_normalized(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push('%');
            out.push(b[i + 1].to_ascii_uppercase() as char);
            out.push(b[i + 2].to_ascii_uppercase() as char);
            i += 3;
        } else {
            let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&s[i..i + ch_len]);
            i += ch_len;
        }
    }
}

/// Canonical form of `url`: lowercase scheme and host, default port and fragment removed,
/// trailing dot on the host removed, empty path becomes `/`, percent-escapes uppercased, plus
/// the choices in `opts`. Userinfo is kept verbatim; dot segments are not resolved.
pub fn normalize_url(url: &str, opts: &UrlNormOptions) -> Result<String> {
    let invalid = |reason| DedupError::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let trimmed = url.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| invalid("missing `scheme://`"))?;
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(invalid(
            "scheme must be a letter followed by letters, digits, `+`, `-` or `.`",
        ));
    }
    let scheme = scheme.to_ascii_lowercase();
    // The fragment never reaches the server, so it cannot distinguish documents.
    let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path_query) = rest.split_at(auth_end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6
            .find(']')
            .ok_or_else(|| invalid("unterminated IPv6 literal"))?;
        let after = &v6[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(invalid("unexpected characters after IPv6 literal")),
        };
        (&hostport[..close + 2], port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = port.filter(|p| !p.is_empty());
    if let Some(p) = port {
        if !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("port is not a number"));
        }
    }
    let mut host = host.to_lowercase();
    if host.ends_with('.') {
        host.pop();
    }
    if opts.strip_www {
        if let Some(h) = host.strip_prefix("www.") {
            host = h.to_owned();
        }
    }
    if host.is_empty() {
        return Err(invalid("empty host"));
    }

    let mut out = String::with_capacity(trimmed.len());
    out.push_str(&scheme);
    out.push_str("://");
    if let Some(u) = userinfo {
        out.push_str(u);
        out.push('@');
    }
    out.push_str(&host);
    if let Some(p) = port {
        let p = p.trim_start_matches('0');
        if default_port(&scheme) != Some(p) {
            out.push(':');
            out.push_str(if p.is_empty() { "0" } else { p });
        }
    }

    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let mut path = if path.is_empty() { "/" } else { path };
    if opts.trailing_slash == TrailingSlash::Strip {
        let stripped = path.trim_end_matches('/');
        path = if stripped.is_empty() { "/" } else { stripped };
    }
    push_percent_normalized(&mut out, path);

    if let Some(q) = query {
        let mut params: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
        if opts.sort_query {
            params.sort_unstable();
        }
        if !params.is_empty() {
            out.push('?');
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    out.push('&');
                }
                push_percent_normalized(&mut out, p);
            }
        }
    }
    Ok(out)
}

/// xxh3-128 of the canonical URL; the partition key for URL dedup.
pub fn url_key(url: &str, opts: &UrlNormOptions) -> Result<u128> {
    Ok(xxhash_rust::xxh3::xxh3_128(
        normalize_url(url, opts)?.as_bytes(),
    ))
}

const BLOOM_MAGIC: &[u8; 8] = b"CURBLOOM";
const BLOOM_VERSION: u32 = 1;

/// Bit count and hash count for `expected_items` at `fp_rate`, validated.
fn bloom_shape(expected_items: u64, fp_rate: f64) -> Result<(u64, u32)> {
    if expected_items == 0 {
        return Err(DedupError::param("expected_items", "must be at least 1"));
    }
    if !(fp_rate > 0.0 && fp_rate < 1.0) {
        return Err(DedupError::param(
            "fp_rate",
            format!("{fp_rate} is not in the open interval (0, 1)"),
        ));
    }
    let ln2 = std::f64::consts::LN_2;
    let bits = (-(expected_items as f64) * fp_rate.ln() / (ln2 * ln2)).ceil();
    // Whole 64-bit words; the cap keeps the word count addressable on every platform.
    let bits = (bits as u64)
        .max(64)
        .div_ceil(64)
        .checked_mul(64)
        .filter(|&b| b <= 1 << 46)
        .ok_or_else(|| {
            DedupError::param(
                "expected_items",
                "filter would exceed 8 TiB; lower expected_items or raise fp_rate",
            )
        })?;
    let k = ((bits as f64 / expected_items as f64) * ln2)
        .round()
        .clamp(1.0, 32.0) as u32;
    Ok((bits, k))
}

/// Seeded Bloom filter over byte strings with Kirsch-Mitzenmacher double hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloomFilter {
    words: Vec<u64>,
    num_bits: u64,
    num_hashes: u32,
    seed: u64,
    inserted: u64,
}

impl BloomFilter {
    /// Memory the filter's bit array will take, so callers can budget before allocating.
    pub fn memory_bytes(expected_items: u64, fp_rate: f64) -> Result<u64> {
        Ok(bloom_shape(expected_items, fp_rate)?.0 / 8)
    }

    /// An empty filter sized for `expected_items` at `fp_rate`; `seed` fixes the hash functions.
    pub fn new(expected_items: u64, fp_rate: f64, seed: u64) -> Result<Self> {
        let (num_bits, num_hashes) = bloom_shape(expected_items, fp_rate)?;
        let words = usize::try_from(num_bits / 64).map_err(|_| {
            DedupError::param(
                "expected_items",
                "filter does not fit in this address space",
            )
        })?;
        Ok(BloomFilter {
            words: vec![0; words],
            num_bits,
            num_hashes,
            seed,
            inserted: 0,
        })
    }

    /// Number of hash functions in use.
    pub fn num_hashes(&self) -> u32 {
        self.num_hashes
    }

    /// Size of the bit array in bits.
    pub fn num_bits(&self) -> u64 {
        self.num_bits
    }

    /// How many [`BloomFilter::insert`] calls reported a new item.
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    fn positions(&self, item: &[u8]) -> impl Iterator<Item = u64> {
        let h = xxhash_rust::xxh3::xxh3_128_with_seed(item, self.seed);
        let h1 = h as u64;
        // An odd step visits distinct positions whenever num_bits is a power of two.
        let h2 = (h >> 64) as u64 | 1;
        let m = self.num_bits;
        (0..u64::from(self.num_hashes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
    }

    /// True if `item` may have been inserted (false positives at the configured rate).
    pub fn contains(&self, item: &[u8]) -> bool {
        self.positions(item)
            .all(|p| self.words[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Inserts `item`; returns true if it was (probably) already present, which is the
    /// streaming "is duplicate" answer.
    pub fn insert(&mut self, item: &[u8]) -> bool {
        let mut present = true;
        for p in self.positions(item) {
            let (w, bit) = ((p / 64) as usize, 1u64 << (p % 64));
            present &= self.words[w] & bit != 0;
            self.words[w] |= bit;
        }
        if !present {
            self.inserted += 1;
        }
        present
    }

    /// Persists the filter (versioned header, xxh3 checksum, atomic rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut w = FramedWriter::create(path, BLOOM_MAGIC, BLOOM_VERSION)?;
        w.u64(self.num_bits)?;
        w.u32(self.num_hashes)?;
        w.u64(self.seed)?;
        w.u64(self.inserted)?;
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in self.words.chunks(8 * 1024) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|w| w.to_le_bytes()));
            w.bytes(&buf)?;
        }
        w.finish()
    }

    /// Loads a filter written by [`BloomFilter::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let mut r = FramedReader::open(path, BLOOM_MAGIC, BLOOM_VERSION)?;
        let num_bits = r.u64()?;
        let num_hashes = r.u32()?;
        let seed = r.u64()?;
        let inserted = r.u64()?;
        if num_bits == 0 || num_bits % 64 != 0 || !(1..=32).contains(&num_hashes) {
            return Err(r.corrupt(format!(
                "invalid shape: {num_bits} bits, {num_hashes} hashes"
            )));
        }
        let n_words = num_bits / 64;
        let file_len = std::fs::metadata(path)
            .map_err(|e| DedupError::io(path, e))?
            .len();
        if n_words.saturating_mul(8) > file_len {
            return Err(r.corrupt("bit array larger than the file"));
        }
        let mut words = Vec::with_capacity(n_words as usize);
        let mut b = [0u8; 8];
        for _ in 0..n_words {
            r.fill(&mut b)?;
            words.push(u64::from_le_bytes(b));
        }
        r.finish()?;
        Ok(BloomFilter {
            words,
            num_bits,
            num_hashes,
            seed,
            inserted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(u: &str) -> String {
        normalize_url(u, &UrlNormOptions::default()).unwrap()
    }

    #[test]
    fn url_fixtures() {
        assert_eq!(
            norm("HTTP://WWW.Example.COM:80/a/b/?z=1&a=2#frag"),
            "http://example.com/a/b?a=2&z=1"
        );
        assert_eq!(norm("https://example.com:443"), "https://example.com/");
        assert_eq!(
            norm("https://example.com:8443/"),
            "https://example.com:8443/"
        );
        assert_eq!(
            norm(" https://example.com./x%2fy?&&b&a= "),
            "https://example.com/x%2Fy?a=&b"
        );
        assert_eq!(norm("http://user:pw@[::1]:80/p"), "http://user:pw@[::1]/p");
        assert_eq!(norm("http://[::1]:8080"), "http://[::1]:8080/");
        let keep = UrlNormOptions {
            strip_www: false,
            trailing_slash: TrailingSlash::Keep,
            sort_query: false,
        };
        assert_eq!(
            normalize_url("http://www.x.org/a/?b=1&a=2", &keep).unwrap(),
            "http://www.x.org/a/?b=1&a=2"
        );
        assert_eq!(
            url_key("http://x.org/a/", &UrlNormOptions::default()).unwrap(),
            url_key("HTTP://www.x.org/a", &UrlNormOptions::default()).unwrap()
        );
    }

    #[test]
    fn bad_urls_are_rejected_with_reason() {
        for (u, why) in [
            ("example.com/a", "scheme"),
            ("1http://x", "scheme"),
            ("http://", "empty host"),
            ("http://x:abc/", "port"),
            ("http://[::1/", "IPv6"),
        ] {
            let err = normalize_url(u, &UrlNormOptions::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{u}: {err}");
        }
    }

    #[test]
    fn bloom_sizing_and_rate() {
        // 1M items at 1% needs ~9.59 bits per item.
        let bytes = BloomFilter::memory_bytes(1_000_000, 0.01).unwrap();
        assert!((1_190_000..1_210_000).contains(&bytes), "{bytes}");
        assert!(BloomFilter::memory_bytes(0, 0.01)
            .unwrap_err()
            .to_string()
            .contains("expected_items"));
        assert!(BloomFilter::new(10, 1.0, 0)
            .unwrap_err()
            .to_string()
            .contains("fp_rate"));
        assert!(BloomFilter::new(10, f64::NAN, 0).is_err());

        let n = 20_000u64;
        let mut f = BloomFilter::new(n, 0.01, 7).unwrap();
        let reported_present = (0..n)
            .filter(|i| f.insert(format!("in-{i}").as_bytes()))
            .count();
        assert!(
            reported_present < (n / 50) as usize,
            "{reported_present} fresh items reported present"
        );
        assert_eq!(f.inserted(), n - reported_present as u64);
        assert!((0..n).all(|i| f.contains(format!("in-{i}").as_bytes())));
        let fp = (0..n)
            .filter(|i| f.contains(format!("out-{i}").as_bytes()))
            .count() as f64
            / n as f64;
        assert!(fp < 0.02, "false-positive rate {fp}");
        assert!(f.insert(b"in-5"));
    }

    #[test]
    fn bloom_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("urls.bloom");
        let mut f = BloomFilter::new(1000, 0.001, 42).unwrap();
        for u in ["http://a.org/", "http://b.org/"] {
            f.insert(norm(u).as_bytes());
        }
        f.save(&path).unwrap();
        let g = BloomFilter::load(&path).unwrap();
        assert_eq!(f, g);
        assert!(g.contains(b"http://a.org/"));

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(BloomFilter::load(&path)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        bytes[8] = 9;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            BloomFilter::load(&path),
            Err(DedupError::VersionMismatch { found: 9, .. })
        ));
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert!(BloomFilter::load(&path).is_err());
    }

    #[test]
    fn bloom_is_deterministic_per_seed() {
        let mut a = BloomFilter::new(100, 0.01, 1).unwrap();
        let mut b = BloomFilter::new(100, 0.01, 1).unwrap();
        let mut c = BloomFilter::new(100, 0.01, 2).unwrap();
        for x in [&b"x"[..], b"y"] {
            a.insert(x);
            b.insert(x);
            c.insert(x);
        }
        assert_eq!(a, b);
        assert_ne!(a.words, c.words);
    }
}
