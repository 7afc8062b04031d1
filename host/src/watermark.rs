//! Watermarks: generated at sources with bounded out-of-orderness, and
//! combined at a task as the minimum over its inputs.

/// No watermark yet.
pub const NO_WATERMARK: i64 = i64::MIN;
/// The end of event time: every event-time timer fires.
pub const END_OF_TIME: i64 = i64::MAX;

/// Flink's `BoundedOutOfOrdernessWatermarks`: after seeing the largest
/// timestamp `t`, no element older than `t - bound` is expected, so the
/// watermark is `t - bound - 1`.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    bound_ms: i64,
    max_timestamp: i64,
}

impl BoundedOutOfOrderness {
    /// A generator for elements at most `bound_ms` late.
    pub fn new(bound_ms: u64) -> Self {
        BoundedOutOfOrderness {
            bound_ms: i64::try_from(bound_ms).unwrap_or(i64::MAX),
            max_timestamp: i64::MIN,
        }
    }

    /// Notes an element's timestamp.
    pub fn observe(&mut self, timestamp: i64) {
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// The current watermark.
    pub fn current(&self) -> i64 {
        if self.max_timestamp == i64::MIN {
            NO_WATERMARK
        } else {
            self.max_timestamp
                .saturating_sub(self.bound_ms)
                .saturating_sub(1)
        }
    }
}

/// The watermark of a task: the minimum over its inputs' watermarks, where
/// neither a finished input nor an idle one holds it back (Flink's
/// `StatusWatermarkValve`).
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    inputs: Vec<i64>,
    idle: Vec<bool>,
    current: i64,
}

impl WatermarkTracker {
    /// A tracker for `inputs` input channels whose watermark is
    /// `watermark` already (restored from a checkpoint; [`NO_WATERMARK`]
    /// for a fresh start): it never goes below it.
    pub fn starting_at(inputs: usize, watermark: i64) -> Self {
        WatermarkTracker {
            inputs: vec![watermark; inputs],
            idle: vec![false; inputs],
            current: watermark,
        }
    }

    /// The task's watermark now.
    pub fn current(&self) -> i64 {
        self.current
    }

    /// Records input `i`'s watermark (it is active again); returns the
    /// task's new watermark if it advanced. Watermarks never go back.
    pub fn update(&mut self, i: usize, watermark: i64) -> Option<i64> {
        if let Some(w) = self.inputs.get_mut(i) {
            *w = (*w).max(watermark);
        }
        self.activate(i);
        self.advance()
    }

    /// Input `i` sent elements: it is active again. Its watermark holds
    /// back the task's from now on, but never moves it back.
    pub fn activate(&mut self, i: usize) {
        if let Some(idle) = self.idle.get_mut(i) {
            *idle = false;
        }
    }

    /// Input `i` is idle; returns the task's new watermark if it advanced
    /// now that `i` no longer holds it back.
    pub fn set_idle(&mut self, i: usize) -> Option<i64> {
        if let Some(idle) = self.idle.get_mut(i) {
            *idle = true;
        }
        self.advance()
    }

    /// Whether every input that has not ended is idle (then the task is
    /// idle too); false for a task with no input.
    pub fn all_idle(&self) -> bool {
        let mut open = self
            .inputs
            .iter()
            .zip(&self.idle)
            .filter(|(w, _)| **w != END_OF_TIME)
            .peekable();
        open.peek().is_some() && open.all(|(_, idle)| *idle)
    }

    /// The minimum over the active inputs, if it is above the current
    /// watermark. With every input idle nothing advances.
    fn advance(&mut self) -> Option<i64> {
        let active = self
            .inputs
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle);
        let min = active.map(|(w, _)| *w).min()?;
        if min > self.current {
            self.current = min;
            Some(min)
        } else {
            None
        }
    }

    /// Records that input `i` ended.
    pub fn finish(&mut self, i: usize) -> Option<i64> {
        self.update(i, END_OF_TIME)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_out_of_orderness_follows_flink() {
        let mut g = BoundedOutOfOrderness::new(100);
        assert_eq!(g.current(), NO_WATERMARK);
        g.observe(1000);
        assert_eq!(g.current(), 899);
        g.observe(500);
        assert_eq!(g.current(), 899);
    }

    #[test]
    fn task_watermark_is_the_minimum_over_inputs() {
        let mut t = WatermarkTracker::starting_at(2, NO_WATERMARK);
        assert_eq!(t.update(0, 10), None);
        assert_eq!(t.update(1, 5), Some(5));
        assert_eq!(t.update(1, 20), Some(10));
        assert_eq!(t.update(0, 8), None, "watermarks never go back");
        assert_eq!(t.finish(0), Some(20));
        assert_eq!(t.finish(1), Some(END_OF_TIME));
    }

    #[test]
    fn a_restored_watermark_is_never_gone_below() {
        let mut t = WatermarkTracker::starting_at(2, 500);
        assert_eq!(t.current(), 500);
        assert_eq!(t.update(0, 100), None, "a restarted source starts low");
        assert_eq!(t.update(1, 400), None);
        assert_eq!(t.update(0, 700), None, "input 1 still holds it at 500");
        assert_eq!(t.update(1, 600), Some(600));
    }

    #[test]
    fn an_idle_input_does_not_hold_the_watermark_back() {
        let mut t = WatermarkTracker::starting_at(2, NO_WATERMARK);
        assert_eq!(t.update(0, 100), None, "input 1 holds it back");
        assert_eq!(t.set_idle(1), Some(100));
        assert!(!t.all_idle());
        assert_eq!(t.update(0, 200), Some(200));
        // Active again (a batch) with no watermark: it holds from now on,
        // but the watermark does not go back.
        t.activate(1);
        assert_eq!(t.update(0, 300), None);
        assert_eq!(t.update(1, 250), Some(250));
        // Every open input idle: nothing advances, and the task is idle.
        assert_eq!(t.set_idle(0), None);
        assert_eq!(t.set_idle(1), None);
        assert!(t.all_idle());
        // An ended input with an idle one: the end of time.
        assert_eq!(t.finish(0), Some(END_OF_TIME));
    }
}
