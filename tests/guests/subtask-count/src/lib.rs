//! Counts the elements its subtask processed in operator (non-keyed) list
//! state `seen`, one item per count, and emits `seen <total>` (the sum of
//! its items) on `close`. After a restore at another parallelism the items
//! are dealt over the new subtasks, so the totals still add up to the
//! number of elements in the job.

use weir_sdk::prelude::*;

struct SubtaskCount {
    seen: OperatorListState<u64>,
    /// The items restored into this subtask, and the count since.
    restored: Vec<u64>,
    count: u64,
}

impl Operator for SubtaskCount {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let seen = ctx.operator_list_state("seen");
        let restored = seen.get();
        Ok(SubtaskCount {
            seen,
            restored,
            count: 0,
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        self.count += 1;
        let mut items = self.restored.clone();
        items.push(self.count);
        self.seen.update(&items);
        ctx.emit(e.key, e.value, e.timestamp);
    }

    fn close(&mut self, ctx: &mut Context) {
        let total: u64 = self.restored.iter().sum::<u64>() + self.count;
        ctx.emit(None, format!("seen {total}").as_bytes(), None);
    }
}

export_operator!(SubtaskCount);
