//! [`SessionWindowedValue`]: Flink's event-time session windows. Each
//! element opens a window `[t, t + gap)`; windows of one key that touch or
//! overlap merge into one (their accumulators merged by the operator's
//! `merge`), so a session ends after `gap` without elements. The state
//! stays host-owned: the key's open sessions in one value state, each
//! session's accumulator in the window's namespace.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Window;
use super::value::{Added, cleanup_time, fire, schedule};
use crate::{Context, OpenContext, TimeDomain, Timer, ValueState};

/// A keyed accumulator per session window.
#[derive(Debug)]
pub struct SessionWindowedValue<T> {
    acc: ValueState<T>,
    sessions: ValueState<Vec<(i64, i64)>>,
    gap: i64,
    lateness: i64,
}

impl<T> SessionWindowedValue<T>
where
    T: Serialize + DeserializeOwned + Clone,
{
    /// Declares the state `name` (the accumulators) and `name.sessions`
    /// (each key's open sessions) in `open`, for sessions that end after
    /// `gap_ms` without elements.
    pub fn new(ctx: &mut OpenContext, name: &str, gap_ms: i64) -> Result<Self, String> {
        if gap_ms <= 0 {
            return Err(format!("session gap must be positive, got {gap_ms}"));
        }
        Ok(SessionWindowedValue {
            acc: ctx.value_state_unprefetched(name),
            sessions: ctx.value_state_unprefetched(&format!("{name}.sessions")),
            gap: gap_ms,
            lateness: 0,
        })
    }

    /// Keeps each session's state `ms` past its end (Flink's
    /// `allowedLateness`).
    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.lateness = ms.max(0);
        self
    }

    /// Adds an element with `timestamp` for the current key: its window
    /// merges with the sessions it touches (their accumulators combined
    /// with `merge`), then `fold` takes it in.
    pub fn add(
        &self,
        ctx: &mut Context,
        timestamp: i64,
        fold: impl FnOnce(Option<T>) -> T,
        mut merge: impl FnMut(T, T) -> T,
    ) -> Added<T> {
        let watermark = ctx.watermark();
        let new = Window {
            start: timestamp,
            end: timestamp.saturating_add(self.gap),
        };
        let mut added = Added::default();
        // As Flink's merging windows: merge first, then judge lateness by
        // the merged session (an element inside an open session is not
        // late because its own window alone would be).
        let mut sessions = self.open_sessions();
        let (merged, absorbed) = merge_session(&mut sessions, new);
        if cleanup_time(&merged, self.lateness) <= watermark {
            added.late = 1;
            return added;
        }
        let mut acc: Option<T> = None;
        for w in &absorbed {
            let ns = w.namespace();
            if let Some(v) = self.acc.get_in(&ns) {
                acc = Some(match acc {
                    None => v,
                    Some(a) => merge(a, v),
                });
            }
            self.acc.clear_in(&ns);
            ctx.delete_timer_in(TimeDomain::EventTime, &ns, w.max_timestamp());
            if self.lateness > 0 {
                ctx.delete_timer_in(TimeDomain::EventTime, &ns, cleanup_time(w, self.lateness));
            }
        }
        let acc = fold(acc);
        self.acc.set_in(&merged.namespace(), &acc);
        self.save_sessions(&sessions);
        schedule(ctx, &merged, self.lateness, watermark, acc, &mut added);
        added
    }

    /// Handles one of this state's timers: at a session's end, returns the
    /// session with its accumulator; once its state goes, it is no longer
    /// an open session of the key.
    pub fn fire(&self, timer: &Timer<'_>) -> Option<(Window, T)> {
        let cleared = timer.domain == TimeDomain::EventTime
            && Window::from_namespace(timer.namespace)
                .is_some_and(|w| timer.time == cleanup_time(&w, self.lateness));
        let fired = fire(&self.acc, self.lateness, timer);
        if (cleared || fired.as_ref().is_some_and(|f| f.2))
            && let Some(w) = Window::from_namespace(timer.namespace)
        {
            let mut sessions = self.open_sessions();
            sessions.retain(|s| *s != w);
            self.save_sessions(&sessions);
        }
        fired.map(|(w, v, _)| (w, v))
    }

    fn open_sessions(&self) -> Vec<Window> {
        self.sessions
            .get()
            .unwrap_or_default()
            .into_iter()
            .map(|(start, end)| Window { start, end })
            .collect()
    }

    fn save_sessions(&self, sessions: &[Window]) {
        if sessions.is_empty() {
            self.sessions.clear();
        } else {
            let v: Vec<(i64, i64)> = sessions.iter().map(|w| (w.start, w.end)).collect();
            self.sessions.set(&v);
        }
    }
}

/// Removes from `sessions` every window that `new` touches or overlaps
/// (Flink's `TimeWindow.intersects`), adds the window that covers them
/// all, and returns it with the windows it replaced.
pub(crate) fn merge_session(sessions: &mut Vec<Window>, new: Window) -> (Window, Vec<Window>) {
    let mut cover = new;
    let mut absorbed = Vec::new();
    // A merged window may reach further windows: repeat until none does.
    loop {
        let before = absorbed.len();
        sessions.retain(|w| {
            let touches = w.start <= cover.end && w.end >= cover.start;
            if touches {
                cover.start = cover.start.min(w.start);
                cover.end = cover.end.max(w.end);
                absorbed.push(*w);
            }
            !touches
        });
        if absorbed.len() == before {
            break;
        }
    }
    sessions.push(cover);
    (cover, absorbed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: i64, end: i64) -> Window {
        Window { start, end }
    }

    #[test]
    fn sessions_merge_as_flinks_do() {
        let mut s = Vec::new();
        assert_eq!(merge_session(&mut s, w(0, 10)), (w(0, 10), vec![]));
        // A gap: a second session.
        assert_eq!(merge_session(&mut s, w(20, 30)), (w(20, 30), vec![]));
        // Touching at 10 merges (Flink's intersects is inclusive).
        assert_eq!(merge_session(&mut s, w(10, 20)).0, w(0, 30));
        assert_eq!(s, vec![w(0, 30)]);
        // Inside an open session: the session itself, absorbed and put back.
        assert_eq!(merge_session(&mut s, w(5, 15)), (w(0, 30), vec![w(0, 30)]));
        // Bridging two sessions, found in any order.
        let mut s = vec![w(40, 50), w(0, 10), w(20, 30)];
        let (cover, mut gone) = merge_session(&mut s, w(8, 22));
        gone.sort();
        assert_eq!((cover, gone), (w(0, 30), vec![w(0, 10), w(20, 30)]));
        assert_eq!(s, vec![w(40, 50), w(0, 30)]);
    }
}
