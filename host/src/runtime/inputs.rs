//! A task's input channels as its loop reads them: announcements on the
//! priority lanes first, then what an unaligned checkpoint pulled out of a
//! channel ahead of processing, then whatever channel is ready.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::{Select, TryRecvError};

use crate::channel::{Announcement, Batch, ChannelReceiver, Event};
use crate::spec::Partitioning;

/// One input channel of a task, with what it feeds.
#[derive(Debug)]
pub(crate) struct InputChannel {
    /// The channel.
    pub(crate) rx: ChannelReceiver,
    /// The operator input it feeds (0, or 1 for a second input).
    pub(crate) side: u8,
    /// The partitioning of the edge it belongs to.
    pub(crate) partition: Partitioning,
}

impl InputChannel {
    /// Channel `rx` of `edge`.
    pub(crate) fn of(rx: ChannelReceiver, edge: &crate::spec::graph::Edge) -> Self {
        InputChannel {
            rx,
            side: edge.input,
            partition: edge.partition,
        }
    }
}

/// What the task takes next.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// An event of input `.0`, in its order.
    Event(usize, Event),
    /// A barrier announced on input `.0`'s priority lane.
    Announcement(usize, Announcement),
    /// An input's sender went away without ending its input.
    Gone,
    /// The deadline passed first.
    Timeout,
}

/// The inputs of one task.
#[derive(Debug)]
pub(crate) struct InputGate {
    channels: Vec<InputChannel>,
    /// Per input: events pulled out of its channel ahead of processing
    /// (an unaligned checkpoint's drain), in order.
    buffered: Vec<VecDeque<Event>>,
    /// Per input: its end of input is in `buffered`: nothing is left to
    /// pull.
    pulled_to_end: Vec<bool>,
    /// Per input: its priority lane is closed.
    priority_closed: Vec<bool>,
    /// Where the next search for a buffered input starts (fairness).
    next: usize,
}

impl InputGate {
    /// A gate over `channels`; without `priority`, the priority lanes are
    /// never read (nothing is announced when checkpoints cannot go
    /// unaligned), so they cost the hot path nothing.
    pub(crate) fn new(channels: Vec<InputChannel>, priority: bool) -> Self {
        let n = channels.len();
        InputGate {
            channels,
            buffered: vec![VecDeque::new(); n],
            pulled_to_end: vec![false; n],
            priority_closed: vec![!priority; n],
            next: 0,
        }
    }

    /// How many inputs.
    pub(crate) fn len(&self) -> usize {
        self.channels.len()
    }

    /// The inputs' channels, with what they feed.
    pub(crate) fn channels(&self) -> &[InputChannel] {
        &self.channels
    }

    /// The batches pulled out of input `i` and not yet processed.
    pub(crate) fn buffered_batches(&self, i: usize) -> impl Iterator<Item = &Batch> {
        self.buffered[i].iter().filter_map(|e| match e {
            Event::Batch(b) => Some(b),
            _ => None,
        })
    }

    /// The next thing to take: an announcement on any priority lane; a
    /// data-lane barrier of an input in `draining`, whose earlier events
    /// are pulled into its buffer first; an event buffered or waiting on
    /// one of the `readable` inputs; or [`Arrival::Timeout`] at
    /// `deadline`.
    pub(crate) fn next(
        &mut self,
        readable: &[usize],
        draining: &dyn Fn(usize) -> bool,
        deadline: Option<Instant>,
    ) -> Arrival {
        loop {
            if let Some(a) = self.poll_priority() {
                return a;
            }
            for i in 0..self.channels.len() {
                if draining(i)
                    && let Some(a) = self.pull(i)
                {
                    return a;
                }
            }
            if let Some(a) = self.take_buffered(readable) {
                return a;
            }
            match self.select(readable, deadline) {
                Some(a) => return a,
                None => continue,
            }
        }
    }

    fn poll_priority(&mut self) -> Option<Arrival> {
        for (i, ch) in self.channels.iter().enumerate() {
            if self.priority_closed[i] {
                continue;
            }
            match ch.rx.priority.try_recv() {
                Ok(a) => return Some(Arrival::Announcement(i, a)),
                Err(TryRecvError::Disconnected) => self.priority_closed[i] = true,
                Err(TryRecvError::Empty) => {}
            }
        }
        None
    }

    /// Pulls input `i`'s channel into its buffer up to its barrier (which
    /// is returned at once) or its end.
    fn pull(&mut self, i: usize) -> Option<Arrival> {
        while !self.pulled_to_end[i] {
            match self.channels[i].rx.data.try_recv() {
                Ok(Event::Barrier(b)) => return Some(Arrival::Event(i, Event::Barrier(b))),
                Ok(Event::EndOfInput) => {
                    self.buffer(i, Event::EndOfInput);
                    self.pulled_to_end[i] = true;
                }
                Ok(e) => self.buffer(i, e),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => {
                    return self.buffered[i].is_empty().then_some(Arrival::Gone);
                }
            }
        }
        None
    }

    fn buffer(&mut self, i: usize, e: Event) {
        self.buffered[i].push_back(e);
        self.channels[i].rx.backlog.fetch_add(1, Ordering::AcqRel);
    }

    fn take_buffered(&mut self, readable: &[usize]) -> Option<Arrival> {
        let n = readable.len();
        for k in 0..n {
            let i = readable[(self.next + k) % n];
            if let Some(e) = self.buffered[i].pop_front() {
                self.channels[i].rx.backlog.fetch_sub(1, Ordering::AcqRel);
                self.next = (self.next + k + 1) % n.max(1);
                return Some(Arrival::Event(i, e));
            }
        }
        None
    }

    /// Waits on the readable data lanes and the open priority lanes;
    /// `None` when a priority lane turned out closed (look again).
    fn select(&mut self, readable: &[usize], deadline: Option<Instant>) -> Option<Arrival> {
        let mut sel = Select::new();
        let mut ops: Vec<(usize, bool)> = Vec::with_capacity(readable.len() * 2);
        for &i in readable {
            sel.recv(&self.channels[i].rx.data);
            ops.push((i, false));
        }
        for (i, ch) in self.channels.iter().enumerate() {
            if !self.priority_closed[i] {
                sel.recv(&ch.rx.priority);
                ops.push((i, true));
            }
        }
        let ready = match deadline {
            Some(d) => match sel.select_deadline(d) {
                Ok(r) => r,
                Err(_) => return Some(Arrival::Timeout),
            },
            None if ops.is_empty() => return Some(Arrival::Timeout),
            None => sel.select(),
        };
        let (i, priority) = ops[ready.index()];
        if priority {
            return match ready.recv(&self.channels[i].rx.priority) {
                Ok(a) => Some(Arrival::Announcement(i, a)),
                Err(_) => {
                    self.priority_closed[i] = true;
                    None
                }
            };
        }
        Some(match ready.recv(&self.channels[i].rx.data) {
            Ok(e) => Arrival::Event(i, e),
            Err(_) => Arrival::Gone,
        })
    }
}
