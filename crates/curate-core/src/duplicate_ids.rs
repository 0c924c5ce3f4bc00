//! Input ids taken from the data (`id_field`) that occur more than once.
//!
//! `explain`, `forget` and the registry name records by id, so a second record with the same
//! id would be invisible to them. Each task checks the ids it reads against those it read
//! before and, by the spec's `on_duplicate_id`, counts them (and warns), quarantines the later
//! ones with their content, or fails.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::BooleanArray;
use arrow_select::filter::filter_record_batch;

use crate::io::{BoxError, Chunk};
use crate::{quarantine, record};
use crate::spec::OnDuplicateId;

/// The ids one task has read so far.
pub(crate) struct IdCheck {
    policy: OnDuplicateId,
    /// 128-bit hashes of the ids: exact for any practical count, a fraction of the memory
    /// of the strings.
    seen: HashSet<u128>,
    /// Duplicates found so far.
    pub(crate) found: u64,
}

impl IdCheck {
    pub(crate) fn new(policy: OnDuplicateId) -> Self {
        IdCheck { policy, seen: HashSet::new(), found: 0 }
    }

    /// Applies the policy to a chunk just read from `file`.
    pub(crate) fn apply(&mut self, chunk: &mut Chunk, file: &str) -> Result<(), BoxError> {
        let batch = &chunk.batch;
        let ids = batch.column_by_name(record::ID).ok_or("input batch without an id column")?.as_string::<i32>();
        let mut dup = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let id = id.unwrap_or_default();
            let h = u128::from_le_bytes(blake3::hash(id.as_bytes()).as_bytes()[..16].try_into().unwrap_or_default());
            if !self.seen.insert(h) {
                dup.push(row);
            }
        }
        if dup.is_empty() {
            return Ok(());
        }
        self.found += dup.len() as u64;
        let at = |row: usize| quarantine::location(batch, row);
        match self.policy {
            OnDuplicateId::Keep => {
                let first = dup[0];
                tracing::warn!(file, id = ids.value(first), at = %at(first), "record id seen before in this input; kept (input.on_duplicate_id: keep)");
            }
            OnDuplicateId::Fail => {
                let first = dup[0];
                return Err(format!(
                    "{file}: record id `{}` ({}) occurs more than once; set input.on_duplicate_id to `keep` or `quarantine` to go on",
                    ids.value(first),
                    at(first)
                )
                .into());
            }
            OnDuplicateId::Quarantine => {
                for &row in &dup {
                    let error = format!("duplicate id `{}`: an earlier record of this input has it", ids.value(row));
                    chunk.quarantined.push(quarantine::entry(batch, row, Some(file), error));
                }
                let mut keep = vec![true; batch.num_rows()];
                for &row in &dup {
                    keep[row] = false;
                }
                chunk.batch = filter_record_batch(batch, &BooleanArray::from(keep))?;
            }
        }
        Ok(())
    }
}
