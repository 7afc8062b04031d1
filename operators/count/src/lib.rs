//! `count`: emits the running count of each key, as decimal text.
//!
//! Input: a keyed stream (`partition: hash`). Output: for every element, its
//! key with the number of elements seen so far for that key.

use weir_sdk::prelude::*;

/// The running count of each key.
struct Count {
    count: ValueState<u64>,
}

impl Operator for Count {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        Ok(Count {
            count: ctx.value_state("count"),
        })
    }

    fn process(&mut self, element: Element<'_>, ctx: &mut Context) {
        let n = self.count.update(|n| n.unwrap_or(0) + 1);
        ctx.emit(element.key, n.to_string().as_bytes(), element.timestamp);
    }
}

export_operator!(Count);
