//! Keyed like `count`, but declares its state `count` as a list: each
//! element of a key appends to it, and the operator emits the list's
//! length. Restoring `count`'s snapshot into it must be refused before the
//! job starts: the state changed from a value to a list.

use weir_sdk::prelude::*;

struct CountList {
    count: ListState<u64>,
}

impl Operator for CountList {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(CountList {
            count: ctx.list_state("count"),
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        self.count.add(&1);
        let n = self.count.get().len();
        ctx.emit(e.key, n.to_string().as_bytes(), e.timestamp);
    }
}

export_operator!(CountList);
