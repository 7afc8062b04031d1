//! Uses every kind of keyed state: for each element of a key it appends the
//! value to a list, counts the value in a map, keeps the last value in a
//! prefetched value state and the running total in a namespaced value
//! state, folds the largest value into a reducing state and the mean into
//! an aggregating state, and emits `<list length> <distinct values> <last
//! value> <total> <largest> <mean>`.
//! On `close` it emits nothing; every figure comes from state.
//!
//! With config `timer-after-ms: N`, each element also registers a
//! processing-time timer N ms (rounded up to 100 ms) ahead for its key, and
//! a firing timer emits `timer` for that key. With `rearm: true` as well, a
//! firing timer registers itself again at its own (already due) time.
//!
//! With config `ttl-ms: N`, every state is declared with that time-to-live.

use weir_sdk::prelude::*;

/// The mean of the values added: (sum, count), as Flink's example.
struct Mean;

impl Aggregate for Mean {
    type Input = i64;
    type Acc = (i64, u64);
    type Output = f64;

    fn create_accumulator(&self) -> (i64, u64) {
        (0, 0)
    }

    fn add(&self, input: i64, (sum, count): (i64, u64)) -> (i64, u64) {
        (sum + input, count + 1)
    }

    fn get_result(&self, &(sum, count): &(i64, u64)) -> f64 {
        sum as f64 / count.max(1) as f64
    }
}

type Largest = ReducingState<i64, fn(i64, i64) -> i64>;

struct StateKinds {
    seen: ListState<String>,
    counts: MapState<String, u32>,
    last: ValueState<String>,
    total: ValueState<i64>,
    largest: Largest,
    mean: AggregatingState<Mean>,
    timer_after: Option<i64>,
    rearm: bool,
}

impl Operator for StateKinds {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let timer_after = ctx.parse("timer-after-ms")?;
        let rearm = ctx.parse("rearm")?.unwrap_or(false);
        Ok(match ctx.parse::<u64>("ttl-ms")? {
            Some(ms) => {
                let mut ttl = ctx.with_ttl(core::time::Duration::from_millis(ms));
                StateKinds {
                    seen: ttl.list_state("seen"),
                    counts: ttl.map_state("counts"),
                    last: ttl.value_state("last"),
                    total: ttl.value_state("total"),
                    largest: ReducingState::new(ttl.value_state("largest"), i64::max),
                    mean: AggregatingState::new(ttl.value_state("mean"), Mean),
                    timer_after,
                    rearm,
                }
            }
            None => StateKinds {
                seen: ctx.list_state("seen"),
                counts: ctx.map_state("counts"),
                last: ctx.value_state("last"),
                total: ctx.value_state_unprefetched("total"),
                largest: ReducingState::new(ctx.value_state("largest"), i64::max),
                mean: AggregatingState::new(ctx.value_state("mean"), Mean),
                timer_after,
                rearm,
            },
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        let v = e.value_str().unwrap_or_default().to_owned();
        self.seen.add(&v);
        let c = self.counts.get(&v).unwrap_or(0);
        self.counts.put(&v, &(c + 1));
        let previous = self.last.get();
        self.last.set(&v);
        let n: i64 = v.parse().unwrap_or(0);
        let total = self.total.get_in(b"totals").unwrap_or(0) + n;
        self.total.set_in(b"totals", &total);
        let largest = self.largest.add(n);
        self.mean.add(n);
        let line = format!(
            "{} {} {} {} {} {:.2}",
            self.seen.get().len(),
            self.counts.entries().len(),
            previous.unwrap_or_else(|| "-".into()),
            total,
            largest,
            self.mean.get().unwrap_or_default()
        );
        ctx.emit(e.key, line.as_bytes(), e.timestamp);
        if let Some(after) = self.timer_after {
            let due = (ctx.processing_time() + after) / 100 * 100 + 100;
            ctx.register_processing_timer(due);
        }
    }

    fn on_timer(&mut self, timer: Timer<'_>, ctx: &mut Context) {
        if timer.domain == TimeDomain::ProcessingTime {
            ctx.emit(timer.key, b"timer", None);
            if self.rearm {
                ctx.register_processing_timer(timer.time);
            }
        }
    }
}

export_operator!(StateKinds);
