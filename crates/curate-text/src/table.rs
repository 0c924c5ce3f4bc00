//! A minimal open-addressing table from integer keys to a `u32` pair, reset and reused
//! across the n-gram passes of one document instead of building a map per pass.

/// Keys the table can hold, with a 64-bit mix of their bits.
pub(crate) trait Key: Copy + Eq + Default {
    /// Spreads the key's entropy into the high bits used for the slot index.
    fn mix(self) -> u64;
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl Key for u64 {
    #[inline]
    fn mix(self) -> u64 {
        (self ^ (self >> 29)).wrapping_mul(MUL)
    }
}

impl Key for u128 {
    #[inline]
    fn mix(self) -> u64 {
        ((self as u64) ^ ((self >> 64) as u64).wrapping_mul(MUL).rotate_left(31)).mix()
    }
}

/// The slot array every table below probes linearly, sized to a power of two with the
/// load factor at or below one half; slots are indexed by the high bits of a mixed hash.
struct Slots<S> {
    slots: Vec<S>,
    shift: u32,
}

impl<S: Copy> Slots<S> {
    fn new() -> Self {
        Slots {
            slots: Vec::new(),
            shift: 64,
        }
    }

    /// Fills the array with `vacant`, sized for `n` entries.
    fn reset(&mut self, n: usize, vacant: S) {
        let cap = (2 * n).next_power_of_two().max(16);
        self.shift = 64 - cap.trailing_zeros();
        self.slots.clear();
        self.slots.resize(cap, vacant);
    }

    /// The first slot to probe for `mixed`, and the mask that wraps the probe.
    #[inline]
    fn start(&self, mixed: u64) -> (usize, usize) {
        ((mixed >> self.shift) as usize, self.slots.len() - 1)
    }
}

/// Marks a vacant slot in the second payload.
const VACANT: u32 = u32::MAX;

/// Linear-probing table from keys to a `u32` pair.
pub(crate) struct Table<K> {
    slots: Slots<(K, u32, u32)>,
}

impl<K: Key> Table<K> {
    /// An empty table; call [`Table::reset`] before use.
    pub(crate) fn new() -> Self {
        Table {
            slots: Slots::new(),
        }
    }

    /// Empties the table and sizes it for `n` keys.
    pub(crate) fn reset(&mut self, n: usize) {
        self.slots.reset(n, (K::default(), 0, VACANT));
    }

    /// The payload of `key`, inserting `(a, b)` if absent; `b` must not be `u32::MAX`.
    /// Returns the payload and whether it was just inserted.
    #[inline]
    pub(crate) fn upsert(&mut self, key: K, a: u32, b: u32) -> (&mut (K, u32, u32), bool) {
        let (mut i, mask) = self.slots.start(key.mix());
        let slots = &mut self.slots.slots;
        loop {
            let s = slots[i];
            if s.2 == VACANT {
                slots[i] = (key, a, b);
                return (&mut slots[i], true);
            }
            if s.0 == key {
                return (&mut slots[i], false);
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_finds_and_inserts() {
        let mut t: Table<u64> = Table::new();
        t.reset(100);
        for k in 0..100u64 {
            assert!(t.upsert(k * 7919, 1, k as u32).1);
        }
        for k in 0..100u64 {
            let (slot, new) = t.upsert(k * 7919, 0, 0);
            assert!(!new);
            assert_eq!(slot.2, k as u32);
        }
        t.reset(1);
        assert!(t.upsert(5, 0, 0).1);
    }
}

/// A set of indices keyed by 64-bit hashes in 8-byte slots (32-bit tag + index): half
/// the footprint of [`Table`], for passes that mostly insert. A tag match is confirmed by
/// recomputing the full hash of the stored index.
pub(crate) struct TagSet {
    slots: Slots<(u32, u32)>,
}

impl TagSet {
    /// An empty set; call [`TagSet::reset`] before use.
    pub(crate) fn new() -> Self {
        TagSet {
            slots: Slots::new(),
        }
    }

    /// Empties the set and sizes it for `n` entries.
    pub(crate) fn reset(&mut self, n: usize) {
        self.slots.reset(n, (0, 0));
    }

    /// The index stored under `hash` (as told by `hash_of`), or inserts `idx` and
    /// returns `None`. `idx` must be below `u32::MAX`.
    #[inline]
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        idx: u32,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let tag = hash as u32;
        let (mut i, mask) = self.slots.start(hash.wrapping_mul(MUL));
        let slots = &mut self.slots.slots;
        loop {
            let (t, v) = slots[i];
            if v == 0 {
                slots[i] = (tag, idx + 1);
                return None;
            }
            if t == tag && hash_of(v - 1) == hash {
                return Some(v - 1);
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tag_tests {
    use super::*;

    #[test]
    fn finds_only_equal_full_hashes() {
        // Hashes sharing their low 32 bits must not be confused.
        let hashes: Vec<u64> = (0..200u64).map(|i| (i << 32) | 7).collect();
        let mut s = TagSet::new();
        s.reset(hashes.len());
        for (i, &h) in hashes.iter().enumerate() {
            assert_eq!(s.find_or_insert(h, i as u32, |j| hashes[j as usize]), None);
        }
        for (i, &h) in hashes.iter().enumerate() {
            assert_eq!(
                s.find_or_insert(h, 999, |j| hashes[j as usize]),
                Some(i as u32)
            );
        }
    }
}

/// Occurrence counts of 64-bit keys in 8-byte slots (32-bit tag, count), for passes that
/// only ask which keys occur once. Two keys that land on the same probe chain with the
/// same tag are counted as one: only for callers to whom a merged count is harmless.
pub(crate) struct CountTable {
    slots: Slots<(u32, u32)>,
}

impl CountTable {
    /// An empty table; call [`CountTable::reset`] before use.
    pub(crate) fn new() -> Self {
        CountTable {
            slots: Slots::new(),
        }
    }

    /// Empties the table and sizes it for `n` distinct keys.
    pub(crate) fn reset(&mut self, n: usize) {
        self.slots.reset(n, (0, 0));
    }

    /// Counts one occurrence of `key`; returns its slot for [`CountTable::count`].
    #[inline]
    pub(crate) fn add(&mut self, key: u64) -> u32 {
        let mixed = key.mix();
        // Tag 0 marks a vacant slot.
        let tag = mixed as u32 | 1;
        let (mut i, mask) = self.slots.start(mixed);
        let slots = &mut self.slots.slots;
        loop {
            let (t, c) = slots[i];
            if t == 0 || t == tag {
                slots[i] = (tag, c + 1);
                return i as u32;
            }
            i = (i + 1) & mask;
        }
    }

    /// The count of the key whose slot [`CountTable::add`] returned.
    #[inline]
    pub(crate) fn count(&self, slot: u32) -> u32 {
        self.slots.slots[slot as usize].1
    }
}

#[cfg(test)]
mod count_tests {
    use super::*;

    #[test]
    fn counts_occurrences() {
        let mut t = CountTable::new();
        t.reset(300);
        let slots: Vec<u32> = (0..300u64)
            .map(|k| t.add(k % 150 * 0x1_0000_0001))
            .collect();
        assert!(slots.iter().all(|&s| t.count(s) == 2));
        let once = t.add(u64::MAX);
        assert_eq!(t.count(once), 1);
    }
}
