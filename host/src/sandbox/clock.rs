//! A guest's `wasi:clocks/monotonic-clock`: `now` reads the time, and a
//! pollable for an instant or a duration is ready at once, so a guest
//! that sleeps (Python's `time.sleep`, Rust's `std::thread::sleep`)
//! returns at once instead of blocking its task, which an epoch deadline
//! could not interrupt. A guest that waits for time to pass by sleeping
//! in a loop runs until its call times out.

use std::time::Instant;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration, Instant as Nanos};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

/// What the clock's host functions reach: the instance's resource table
/// and the moment its clock counts from.
pub(crate) struct ClockView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) origin: Instant,
}

/// The [`HasData`] of the clock's linker functions.
pub(crate) struct HasClock;

impl HasData for HasClock {
    type Data<'a> = ClockView<'a>;
}

/// A pollable that is always ready.
struct ReadyAtOnce;

#[wasmtime_wasi::async_trait]
impl Pollable for ReadyAtOnce {
    async fn ready(&mut self) {}
}

impl ClockView<'_> {
    fn ready_at_once(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let own = self.table.push(ReadyAtOnce)?;
        subscribe(self.table, own)
    }
}

impl monotonic_clock::Host for ClockView<'_> {
    fn now(&mut self) -> wasmtime::Result<Nanos> {
        Ok(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, _when: Nanos) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_at_once()
    }

    fn subscribe_duration(&mut self, _for: Duration) -> wasmtime::Result<Resource<DynPollable>> {
        self.ready_at_once()
    }
}
