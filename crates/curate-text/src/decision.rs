//! Filter outcomes and the helpers several filters share.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use crate::chars::char_len;
use crate::hash::FxBuild;

/// Why a document was dropped: `<filter>:<rule>`, with datatrove's rule names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// The filter's name, e.g. `gopher_quality`.
    pub filter: &'static str,
    /// datatrove's reason string, e.g. `gopher_short_doc`.
    pub rule: Cow<'static, str>,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.filter, self.rule)
    }
}

/// Keep the document, or drop it for the first failing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every rule passed.
    Keep,
    /// The first failing rule, in datatrove's evaluation order.
    Drop(Reason),
}

impl Decision {
    /// Whether the document is kept.
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep)
    }

    /// The drop reason, if dropped.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            Decision::Keep => None,
            Decision::Drop(r) => Some(r),
        }
    }
}

/// Builds a `Drop` for a fixed rule name.
pub(crate) fn drop(filter: &'static str, rule: &'static str) -> Decision {
    Decision::Drop(Reason {
        filter,
        rule: Cow::Borrowed(rule),
    })
}

/// `a / b` as Python computes it on ints, with 0 instead of `ZeroDivisionError`.
#[inline]
pub(crate) fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// datatrove's `find_duplicates`: how many elements repeat an earlier one, and their
/// total length in code points.
pub(crate) fn find_duplicates<'a>(items: impl IntoIterator<Item = &'a str>) -> (usize, usize) {
    let iter = items.into_iter();
    let mut seen: HashSet<&str, FxBuild> =
        HashSet::with_capacity_and_hasher(iter.size_hint().0, FxBuild::default());
    let (mut n, mut chars) = (0, 0);
    for s in iter {
        if !seen.insert(s) {
            n += 1;
            chars += char_len(s);
        }
    }
    (n, chars)
}

/// A threshold that datatrove tests with `if self.x and ...`: `None` and zero disable it.
#[inline]
pub(crate) fn active<T: Copy + Default + PartialEq>(t: Option<T>) -> Option<T> {
    t.filter(|v| *v != T::default())
}
