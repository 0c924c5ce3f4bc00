//! A small multiplicative hasher (rustc's FxHash) for the short keys the filters hash
//! by the million: SipHash's DoS resistance buys nothing for per-document tables.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash state.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        if bytes.len() >= 32 {
            // Long keys (lines, paragraphs): four independent multiplication chains over
            // 32-byte blocks, so one multiplication's latency is not paid per 8 bytes.
            let mut lanes = [self.hash, SEED, SEED.rotate_left(21), SEED.rotate_left(42)];
            let mut blocks = bytes.chunks_exact(32);
            for block in &mut blocks {
                for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                    *lane = (lane.rotate_left(5) ^ load_le(word)).wrapping_mul(SEED);
                }
            }
            self.hash = 0;
            lanes.into_iter().for_each(|l| self.add(l));
            bytes = blocks.remainder();
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.add(pack_tail(rest));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The 1 to 7 bytes of `rest` and their count in one integer.
#[inline]
fn pack_tail(rest: &[u8]) -> u64 {
    load_le(rest) | (rest.len() as u64) << 56
}

/// Up to 8 bytes as a little-endian integer, zero above, without a variable-length copy
/// (a `memcpy` call per short word): one 8-byte load, two overlapping 4-byte loads, or
/// three single bytes; overlapping bytes are the same bytes, so OR-ing them is exact.
#[inline]
pub(crate) fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    let load4 = |at: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    match n {
        8.. => {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[..8]);
            u64::from_le_bytes(w)
        }
        4..=7 => load4(0) | load4(n - 4) << (8 * (n - 4)),
        1..=3 => {
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1))
        }
        0 => 0,
    }
}

/// `BuildHasher` for [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_pack_exactly() {
        for tail in [
            "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "é", "\0", "a\0",
        ] {
            let b = tail.as_bytes();
            let mut want = [0u8; 8];
            want[..b.len()].copy_from_slice(b);
            want[7] = b.len() as u8;
            assert_eq!(pack_tail(b), u64::from_le_bytes(want), "{tail:?}");
        }
    }
}
