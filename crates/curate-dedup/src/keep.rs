//! Deterministic survivor choice shared by every dedup flavour.
//!
//! The engine maps its `keep` policy onto a [`SortKey`] per record:
//! `first` -> [`SortKey::FIRST`] (ties fall back to the smallest id, i.e. first by id),
//! `longest` -> [`SortKey::from_len`], `highest:<column>` -> [`SortKey::from_f64`] or
//! [`SortKey::from_i64`]. The survivor is the record with the greatest key, ties broken by the
//! smallest id, so the result never depends on input order.

/// Caller-provided preference: greater keys win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SortKey(pub u64);

impl SortKey {
    /// Neutral key for `keep: first`: the smallest id wins.
    pub const FIRST: SortKey = SortKey(0);
    /// Beats every other key; used for records already published through a persistent index.
    pub const MAX: SortKey = SortKey(u64::MAX);

    /// Longer texts win (`keep: longest`).
    pub fn from_len(len: usize) -> Self {
        SortKey(len as u64)
    }

    /// Greater signed values win (`keep: highest:<int column>`).
    pub fn from_i64(v: i64) -> Self {
        // Flipping the sign bit maps i64 order onto u64 order.
        SortKey((v as u64) ^ (1 << 63))
    }

    /// Greater floats win (`keep: highest:<float column>`); NaN ranks below every number.
    pub fn from_f64(v: f64) -> Self {
        if v.is_nan() {
            return SortKey(0);
        }
        let bits = v.to_bits();
        // IEEE-754 total order trick: negative floats have all bits flipped, positives the sign bit.
        let ordered = if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        };
        // Reserve 0 for NaN so that it loses against -inf.
        SortKey(ordered.max(1))
    }
}

/// True when candidate `(a_key, a_id)` should be kept over `(b_key, b_id)`.
pub fn beats(a_key: SortKey, a_id: u64, b_key: SortKey, b_id: u64) -> bool {
    (a_key, std::cmp::Reverse(a_id)) > (b_key, std::cmp::Reverse(b_id))
}

/// Index of the survivor among `(sort_key, id)` pairs, or `None` for an empty group.
pub fn pick(group: &[(SortKey, u64)]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &(key, id)) in group.iter().enumerate() {
        match best {
            Some(b) if !beats(key, id, group[b].0, group[b].1) => {}
            _ => best = Some(i),
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_and_int_orders_are_preserved() {
        let floats = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            2.5,
            f64::INFINITY,
        ];
        for w in floats.windows(2) {
            assert!(
                SortKey::from_f64(w[0]) <= SortKey::from_f64(w[1]),
                "{} vs {}",
                w[0],
                w[1]
            );
        }
        assert!(SortKey::from_f64(f64::NAN) < SortKey::from_f64(f64::NEG_INFINITY));
        let ints = [i64::MIN, -5, 0, 7, i64::MAX];
        for w in ints.windows(2) {
            assert!(SortKey::from_i64(w[0]) < SortKey::from_i64(w[1]));
        }
    }

    #[test]
    fn pick_prefers_key_then_smallest_id() {
        let g = [
            (SortKey(3), 9),
            (SortKey(5), 4),
            (SortKey(5), 2),
            (SortKey(1), 1),
        ];
        assert_eq!(pick(&g), Some(2));
        let mut rev = g;
        rev.reverse();
        assert_eq!(rev[pick(&rev).unwrap()], (SortKey(5), 2));
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[(SortKey::FIRST, 8), (SortKey::FIRST, 3)]), Some(1));
    }
}
