//! `count`: emits the running count of each key, as decimal text.
//!
//! Input: a keyed stream (`partition: hash`). Output: for every element, its
//! key with the number of elements seen so far for that key.
//!
//! Config: `ttl-ms` (optional) forgets a key's count that many milliseconds
//! after its last element (state time-to-live), so it counts again from 1.
//! `per-record: true` reads and writes the count through a host call for
//! every element instead of with the batch (the slow path, for
//! `weir bench languages`).

use weir_sdk::prelude::*;

/// The running count of each key.
struct Count {
    count: ValueState<u64>,
}

impl Operator for Count {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let per_record = ctx.parse::<bool>("per-record")?.unwrap_or(false);
        let count = match ctx.parse::<u64>("ttl-ms")? {
            Some(ms) => ctx
                .with_ttl(core::time::Duration::from_millis(ms))
                .value_state("count"),
            None if per_record => ctx.value_state_unprefetched("count"),
            None => ctx.value_state("count"),
        };
        Ok(Count { count })
    }

    fn process(&mut self, element: Element<'_>, ctx: &mut Context) {
        let n = self.count.update(|n| n.unwrap_or(0) + 1);
        let mut digits = [0u8; 20];
        ctx.emit(element.key, decimal(n, &mut digits), element.timestamp);
    }
}

/// `n` in decimal, written into `buf` (no allocation on the hot path).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

export_operator!(Count);
