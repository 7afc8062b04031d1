//! Timers of one subtask: per key and namespace, in event time and in
//! processing time, fired in time order.

use std::collections::BTreeSet;

/// The clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Domain {
    /// Fires when the watermark reaches its time.
    EventTime,
    /// Fires when the wall clock reaches its time.
    ProcessingTime,
}

/// A registered timer; ordered by time, then key, then namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerEntry {
    /// When it fires (ms).
    pub time: i64,
    /// The key it belongs to.
    pub key: Vec<u8>,
    /// Its namespace.
    pub namespace: Vec<u8>,
}

/// The timers of one subtask.
#[derive(Debug, Default, Clone)]
pub struct TimerService {
    event: BTreeSet<TimerEntry>,
    processing: BTreeSet<TimerEntry>,
    /// Bytes of the keys and namespaces registered.
    bytes: usize,
}

fn size(t: &TimerEntry) -> usize {
    t.key.len() + t.namespace.len()
}

impl TimerService {
    fn set(&mut self, d: Domain) -> &mut BTreeSet<TimerEntry> {
        match d {
            Domain::EventTime => &mut self.event,
            Domain::ProcessingTime => &mut self.processing,
        }
    }

    /// Registers a timer (registering it twice keeps one).
    pub fn register(&mut self, d: Domain, entry: TimerEntry) {
        let bytes = size(&entry);
        if self.set(d).insert(entry) {
            self.bytes += bytes;
        }
    }

    /// Deletes a timer if registered.
    pub fn delete(&mut self, d: Domain, entry: &TimerEntry) {
        if self.set(d).remove(entry) {
            self.bytes -= size(entry);
        }
    }

    /// Bytes of the keys and namespaces of the registered timers.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every timer, event time first, each in time order.
    pub fn iter(&self) -> impl Iterator<Item = (Domain, &TimerEntry)> {
        self.event
            .iter()
            .map(|t| (Domain::EventTime, t))
            .chain(self.processing.iter().map(|t| (Domain::ProcessingTime, t)))
    }

    /// Removes and returns, in time order, every timer of `d` due at `now`.
    /// Timers registered while these fire wait for the next advance, so a
    /// timer that re-registers itself cannot loop forever.
    pub fn take_due(&mut self, d: Domain, now: i64) -> Vec<TimerEntry> {
        let set = self.set(d);
        if set.first().is_none_or(|t| t.time > now) {
            return Vec::new();
        }
        let later = match now.checked_add(1) {
            Some(next) => set.split_off(&TimerEntry {
                time: next,
                key: Vec::new(),
                namespace: Vec::new(),
            }),
            None => Default::default(),
        };
        let due: Vec<TimerEntry> = std::mem::replace(set, later).into_iter().collect();
        self.bytes -= due.iter().map(size).sum::<usize>();
        due
    }

    /// The time of the earliest processing-time timer.
    pub fn next_processing_time(&self) -> Option<i64> {
        self.processing.first().map(|t| t.time)
    }

    /// Number of registered timers.
    pub fn len(&self) -> usize {
        self.event.len() + self.processing.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(time: i64, key: &str) -> TimerEntry {
        TimerEntry {
            time,
            key: key.into(),
            namespace: Vec::new(),
        }
    }

    #[test]
    fn timers_fire_in_time_order_once() {
        let mut s = TimerService::default();
        s.register(Domain::EventTime, t(20, "b"));
        s.register(Domain::EventTime, t(10, "a"));
        s.register(Domain::EventTime, t(10, "a"));
        s.register(Domain::ProcessingTime, t(5, "c"));
        assert_eq!(s.len(), 3);
        assert_eq!(s.take_due(Domain::EventTime, 15), vec![t(10, "a")]);
        assert_eq!(s.take_due(Domain::EventTime, 15), vec![]);
        s.register(Domain::EventTime, t(30, "c"));
        s.delete(Domain::EventTime, &t(20, "b"));
        assert_eq!(s.take_due(Domain::EventTime, i64::MAX), vec![t(30, "c")]);
        assert_eq!(s.next_processing_time(), Some(5));
    }
}
