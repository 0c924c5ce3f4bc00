//! fastText's dictionary: word lookup, character n-grams and n-gram bucket remapping.

/// End-of-sentence token, appended to every predicted line.
pub(crate) const EOS: &[u8] = b"</s>";
/// Prefix that makes an out-of-vocabulary token a label (never stored in model files:
/// fastText predicts with its default even if the model was trained with another).
pub(crate) const LABEL_PREFIX: &[u8] = b"__label__";

const FNV_OFFSET: u32 = 2_166_136_261;
const FNV_PRIME: u32 = 16_777_619;
/// Multiplier fastText uses to combine the hashes of consecutive words.
const WORD_NGRAM_MUL: u64 = 116_049_371;
const EMPTY: u32 = u32::MAX;

/// One FNV-1a step the way fastText hashes: each byte is sign-extended (`int8_t`) first,
/// so bytes >= 0x80 flip the upper 24 bits too; released models depend on it.
#[inline(always)]
pub(crate) fn fnv_step(h: u32, b: u8) -> u32 {
    (h ^ (b as i8 as i32 as u32)).wrapping_mul(FNV_PRIME)
}

/// fastText's string hash (FNV-1a over signed bytes).
pub fn hash(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| fnv_step(h, b))
}

/// Where the hashed n-gram buckets live in the input matrix.
pub(crate) enum Buckets {
    /// Bucket `b` is row `nwords + b` (`pruneidx_size < 0`).
    All,
    /// A pruned model that kept no n-gram rows: n-grams are ignored (`pruneidx_size == 0`).
    None,
    /// Quantized with `-cutoff`: only listed buckets survive, renumbered (open addressing,
    /// keyed by bucket; sized by the file's entries, never by `bucket`). Most n-grams of a
    /// text are in no listed bucket (88% for lid.176 on paragraphs): a one-bit-per-slot
    /// filter of 16 bits per entry, small enough to stay in cache, turns most of them away
    /// before the table, whose random reads would miss the cache.
    Pruned { slots: Vec<(u32, u32)>, mask: usize, filter: Vec<u64>, filter_mask: u32 },
}

impl Buckets {
    pub(crate) fn pruned(pairs: &[(i32, i32)], bucket: i32) -> Buckets {
        if pairs.is_empty() {
            return Buckets::None;
        }
        let cap = (pairs.len() * 2).next_power_of_two();
        let mut slots = vec![(EMPTY, 0u32); cap];
        let mask = cap - 1;
        for &(key, value) in pairs {
            // Keys outside [0, bucket) are never looked up; values were checked by the caller.
            if key < 0 || key >= bucket {
                continue;
            }
            let mut i = slot_of(key as u32, mask);
            // Later pairs overwrite earlier ones, like fastText's `pruneidx_[first] = second`.
            while slots[i].0 != EMPTY && slots[i].0 != key as u32 {
                i = (i + 1) & mask;
            }
            slots[i] = (key as u32, value as u32);
        }
        let bits = (pairs.len() * 16).next_power_of_two().max(64);
        let mut filter = vec![0u64; bits / 64];
        let filter_mask = (bits - 1) as u32;
        for &(key, _) in pairs {
            if key >= 0 && key < bucket {
                let b = filter_bit(key as u32, filter_mask);
                filter[b / 64] |= 1 << (b % 64);
            }
        }
        Buckets::Pruned { slots, mask, filter, filter_mask }
    }

    /// The bucket's input row offset after `nwords`, or None when the bucket was pruned.
    #[inline(always)]
    pub(crate) fn map(&self, bucket: u32) -> Option<u32> {
        match self {
            Buckets::All => Some(bucket),
            Buckets::None => None,
            Buckets::Pruned { slots, mask, filter, filter_mask } => {
                let b = filter_bit(bucket, *filter_mask);
                if filter[b / 64] & (1 << (b % 64)) == 0 {
                    return None;
                }
                let mut i = slot_of(bucket, *mask);
                loop {
                    let (k, v) = slots[i];
                    if k == bucket {
                        return Some(v);
                    }
                    if k == EMPTY {
                        return None;
                    }
                    i = (i + 1) & mask;
                }
            }
        }
    }
}

#[inline(always)]
fn slot_of(key: u32, mask: usize) -> usize {
    // Fibonacci hashing: the high half of the product is the well-mixed one.
    ((u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize) & mask
}

#[inline(always)]
fn filter_bit(key: u32, mask: u32) -> usize {
    (key.wrapping_mul(0x85EB_CA6B).rotate_right(13) & mask) as usize
}

/// Words and labels of a model, with what prediction needs precomputed.
pub(crate) struct Dictionary {
    /// All entries' bytes, words then labels, concatenated.
    bytes: Vec<u8>,
    /// Entry `i` is `bytes[ends[i - 1]..ends[i]]`.
    ends: Vec<usize>,
    /// Open addressing on the FNV hash: (hash, entry id).
    table: Vec<(u32, u32)>,
    mask: usize,
    pub(crate) nwords: u32,
    /// Input rows of each word (itself, then its character n-grams), when maxn > 0.
    rows: Vec<u32>,
    row_ends: Vec<usize>,
    pub(crate) minn: u64,
    pub(crate) maxn: u64,
    /// fastText's `maxn <= 0` test (signed), which skips in-vocabulary subwords.
    pub(crate) subwords: bool,
    pub(crate) bucket: u32,
    /// Lemire's fastmod constant for `bucket`: `h % bucket` without a division per n-gram.
    bucket_m: u64,
    pub(crate) word_ngrams: i64,
    pub(crate) buckets: Buckets,
}

/// What a token is to the model.
pub(crate) enum Lookup {
    Word(u32),
    Label,
    Unknown,
}

impl Dictionary {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        entries: Vec<Vec<u8>>,
        nwords: u32,
        minn: i32,
        maxn: i32,
        bucket: u32,
        word_ngrams: i32,
        buckets: Buckets,
    ) -> Dictionary {
        let mut bytes = Vec::with_capacity(entries.iter().map(Vec::len).sum());
        let mut ends = Vec::with_capacity(entries.len());
        for e in &entries {
            bytes.extend_from_slice(e);
            ends.push(bytes.len());
        }
        let cap = (entries.len() * 2).max(2).next_power_of_two();
        let mut dict = Dictionary {
            bytes,
            ends,
            table: vec![(0, EMPTY); cap],
            mask: cap - 1,
            nwords,
            rows: Vec::new(),
            row_ends: Vec::new(),
            // C++ compares these ints with size_t counters: negative values wrap to huge.
            minn: minn as i64 as u64,
            maxn: maxn as i64 as u64,
            subwords: maxn > 0,
            bucket,
            bucket_m: (u64::MAX / u64::from(bucket.max(1))).wrapping_add(1),
            word_ngrams: i64::from(word_ngrams),
            buckets,
        };
        for (id, e) in entries.iter().enumerate() {
            let h = hash(e);
            let mut i = h as usize & dict.mask;
            loop {
                let (sh, sid) = dict.table[i];
                // A duplicate entry replaces the earlier one, as in fastText's word2int_.
                if sid == EMPTY || (sh == h && dict.entry(sid) == e.as_slice()) {
                    dict.table[i] = (h, id as u32);
                    break;
                }
                i = (i + 1) & dict.mask;
            }
        }
        if dict.subwords {
            let mut word = Vec::new();
            for id in 0..nwords {
                dict.rows.push(id);
                let e = dict.entry(id);
                if e != EOS {
                    word.clear();
                    word.push(b'<');
                    word.extend_from_slice(e);
                    word.push(b'>');
                    let mut rows = std::mem::take(&mut dict.rows);
                    dict.char_ngrams(&word, |r| rows.push(r));
                    dict.rows = rows;
                }
                dict.row_ends.push(dict.rows.len());
            }
        }
        dict
    }

    pub(crate) fn entry(&self, id: u32) -> &[u8] {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.bytes[start..self.ends[id]]
    }

    #[inline]
    pub(crate) fn lookup(&self, token: &[u8], h: u32) -> Lookup {
        let mut i = h as usize & self.mask;
        loop {
            let (sh, id) = self.table[i];
            if id == EMPTY {
                break;
            }
            if sh == h && self.entry(id) == token {
                return if id < self.nwords { Lookup::Word(id) } else { Lookup::Label };
            }
            i = (i + 1) & self.mask;
        }
        if token.starts_with(LABEL_PREFIX) {
            Lookup::Label
        } else {
            Lookup::Unknown
        }
    }

    /// Input rows of an in-vocabulary word, as fastText's `addSubwords` pushes them.
    #[inline]
    pub(crate) fn word_rows(&self, id: u32) -> &[u32] {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.row_ends[id - 1] };
        &self.rows[start..self.row_ends[id]]
    }

    /// Input row of a hashed n-gram bucket, as fastText's `pushHash` (None when pruned).
    #[inline(always)]
    pub(crate) fn bucket_row(&self, b: u32) -> Option<u32> {
        self.buckets.map(b).map(|r| self.nwords + r)
    }

    /// Rows of the character n-grams of `word` (already wrapped in `<` `>`), in fastText's
    /// `computeSubwords` order: by start character, then by length. Each start extends one
    /// running hash instead of rehashing every n-gram.
    #[inline]
    pub(crate) fn char_ngrams(&self, word: &[u8], mut push: impl FnMut(u32)) {
        if self.bucket == 0 {
            // fastText would divide by zero; such a model has no n-gram rows anyway.
            return;
        }
        let len = word.len();
        for i in 0..len {
            if word[i] & 0xC0 == 0x80 {
                continue;
            }
            let mut h = FNV_OFFSET;
            let mut j = i;
            let mut n: u64 = 1;
            while j < len && n <= self.maxn {
                h = fnv_step(h, word[j]);
                j += 1;
                while j < len && word[j] & 0xC0 == 0x80 {
                    h = fnv_step(h, word[j]);
                    j += 1;
                }
                if n >= self.minn && !(n == 1 && (i == 0 || j == len)) {
                    if let Some(r) = self.bucket_row(self.bucket_of(h)) {
                        push(r);
                    }
                }
                n += 1;
            }
        }
    }

    /// `h % bucket` (Lemire, Kaser & Kurz 2019: exact for all 32-bit h and bucket).
    #[inline(always)]
    fn bucket_of(&self, h: u32) -> u32 {
        let low = self.bucket_m.wrapping_mul(u64::from(h));
        ((u128::from(low) * u128::from(self.bucket)) >> 64) as u32
    }

    /// Rows of the word n-grams over the line's word hashes (`addWordNgrams`). The hashes
    /// are stored as `int32_t` and widened with sign extension, as fastText does.
    #[inline]
    pub(crate) fn word_ngrams(&self, hashes: &[u32], mut push: impl FnMut(u32)) {
        if self.bucket == 0 || self.word_ngrams <= 1 {
            return;
        }
        let widen = |h: u32| h as i32 as i64 as u64;
        for i in 0..hashes.len() {
            let mut h = widen(hashes[i]);
            let end = (i as i64).saturating_add(self.word_ngrams).min(hashes.len() as i64) as usize;
            for &next in &hashes[i + 1..end.max(i + 1)] {
                h = h.wrapping_mul(WORD_NGRAM_MUL).wrapping_add(widen(next));
                if let Some(r) = self.bucket_row((h % u64::from(self.bucket)) as u32) {
                    push(r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        // Standard FNV-1a 32-bit test vectors (ASCII, where signed and unsigned bytes agree).
        assert_eq!(hash(b""), 0x811c9dc5);
        assert_eq!(hash(b"a"), 0xe40c292c);
        assert_eq!(hash(b"foobar"), 0xbf9cf968);
        // Bytes >= 0x80 are sign-extended: "é" is C3 A9.
        let mut h = FNV_OFFSET;
        for b in [0xC3u32, 0xA9] {
            h = (h ^ (b | 0xFFFF_FF00)).wrapping_mul(FNV_PRIME);
        }
        assert_eq!(hash("é".as_bytes()), h);
        assert_ne!(hash("é".as_bytes()), {
            let mut u = FNV_OFFSET;
            for b in [0xC3u32, 0xA9] {
                u = (u ^ b).wrapping_mul(FNV_PRIME);
            }
            u
        });
        assert_eq!(hash("é".as_bytes()), 0x3cfa_68c1);
        assert_eq!(hash("日本".as_bytes()), 0xf837_8251);
        assert_eq!(hash(EOS), 0xd79c_9359);
    }

    fn dict(minn: i32, maxn: i32, bucket: u32, word_ngrams: i32) -> Dictionary {
        Dictionary::new(
            vec![b"</s>".to_vec(), b"hello".to_vec(), b"__label__a".to_vec()],
            2,
            minn,
            maxn,
            bucket,
            word_ngrams,
            Buckets::All,
        )
    }

    /// The n-grams fastText's computeSubwords would produce, by rehashing each substring.
    fn reference_ngrams(word: &str, minn: usize, maxn: usize, bucket: u32) -> Vec<u32> {
        let chars: Vec<(usize, char)> = word.char_indices().collect();
        let mut out = Vec::new();
        for s in 0..chars.len() {
            for n in 1..=maxn {
                if s + n > chars.len() {
                    break;
                }
                let end = if s + n == chars.len() { word.len() } else { chars[s + n].0 };
                if n >= minn && !(n == 1 && (s == 0 || s + n == chars.len())) {
                    out.push(2 + hash(&word.as_bytes()[chars[s].0..end]) % bucket);
                }
            }
        }
        out
    }

    #[test]
    fn char_ngrams_match_substring_hashes() {
        let d = dict(2, 4, 1000, 1);
        for w in ["<hello>", "<日本語テキスト>", "<é>", "<a>", "<ab>"] {
            let mut got = Vec::new();
            d.char_ngrams(w.as_bytes(), |r| got.push(r));
            assert_eq!(got, reference_ngrams(w, 2, 4, 1000), "{w}");
        }
        let d = dict(1, 1, 1000, 1);
        let mut got = Vec::new();
        d.char_ngrams("<ab>".as_bytes(), |r| got.push(r));
        // Single characters, but not the boundary markers themselves.
        assert_eq!(got, vec![2 + hash(b"a") % 1000, 2 + hash(b"b") % 1000]);
    }

    #[test]
    fn negative_maxn_means_unbounded() {
        let d = dict(3, -1, 1000, 1);
        let mut got = Vec::new();
        d.char_ngrams(b"<abc>", |r| got.push(r));
        assert_eq!(got, reference_ngrams("<abc>", 3, 5, 1000));
    }

    #[test]
    fn word_ngrams_sign_extend() {
        let d = dict(0, 0, 2_000_000, 3);
        let hs = [hash(b"the"), hash("é".as_bytes()), hash(b"</s>")];
        let mut got = Vec::new();
        d.word_ngrams(&hs, |r| got.push(r));
        let w = |h: u32| h as i32 as i64 as u64;
        let mut want = Vec::new();
        for i in 0..3 {
            let mut h = w(hs[i]);
            for &next in &hs[i + 1..] {
                h = h.wrapping_mul(116_049_371).wrapping_add(w(next));
                want.push(2 + (h % 2_000_000) as u32);
            }
        }
        assert_eq!(got, want);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn fastmod_is_exact() {
        let mut x = 0x9E37_79B9u32;
        for bucket in [1u32, 2, 3, 7, 1000, 2_000_000, 10_000_000, 0x7FFF_FFFF] {
            let d = dict(2, 4, bucket, 1);
            for h in [0u32, 1, bucket - 1, bucket, u32::MAX, u32::MAX - 1, 0x8000_0000] {
                assert_eq!(d.bucket_of(h), h % bucket, "{h} % {bucket}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                assert_eq!(d.bucket_of(x), x % bucket, "{x} % {bucket}");
            }
        }
    }

    #[test]
    fn lookup_words_labels_and_unknown() {
        let d = dict(2, 4, 1000, 1);
        assert!(matches!(d.lookup(b"hello", hash(b"hello")), Lookup::Word(1)));
        assert!(matches!(d.lookup(b"</s>", hash(b"</s>")), Lookup::Word(0)));
        assert!(matches!(d.lookup(b"__label__a", hash(b"__label__a")), Lookup::Label));
        assert!(matches!(d.lookup(b"__label__zz", hash(b"__label__zz")), Lookup::Label));
        assert!(matches!(d.lookup(b"hell", hash(b"hell")), Lookup::Unknown));
        assert_eq!(d.word_rows(0), &[0]);
        let mut want = vec![1];
        want.extend(reference_ngrams("<hello>", 2, 4, 1000));
        assert_eq!(d.word_rows(1), want.as_slice());
    }

    #[test]
    fn pruned_buckets_remap() {
        let b = Buckets::pruned(&[(5, 0), (17, 1), (5, 2), (-3, 0), (99, 1)], 50);
        assert_eq!(b.map(5), Some(2));
        assert_eq!(b.map(17), Some(1));
        assert_eq!(b.map(6), None);
        assert_eq!(b.map(99), None);
        assert!(matches!(Buckets::pruned(&[], 50), Buckets::None));
    }
}
