//! A job the session knows: its graph, its control, its state and how it
//! ended, the record the store keeps of it, and a cache of its rendered
//! detail for the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use super::error::SessionError;
use super::model::JobState;
use super::store::{JobRecord, JobStore};
use crate::clock::epoch_ms;
use crate::runtime::JobControl;
use crate::spec::graph::JobGraph;

/// A job the server knows.
#[derive(Debug)]
pub struct JobEntry {
    /// The job id (also the name of its checkpoint folder).
    pub id: String,
    /// The validated graph.
    pub graph: JobGraph,
    /// Cancels it and shows its live counters.
    pub control: Arc<JobControl>,
    /// Ids of the bundles it uses.
    pub bundles: Vec<String>,
    /// When it was submitted (ms since the Unix epoch).
    pub start_time: i64,
    /// What the store keeps of it; `None` for a job the server does not
    /// own (the one `weir run` serves).
    pub(super) record: Mutex<Option<JobRecord>>,
    pub(super) status: Mutex<Status>,
    /// Answers rendered recently, by kind, reused while fresh.
    pub(super) rendered: Mutex<HashMap<&'static str, (Instant, Bytes)>>,
}

#[derive(Debug, Clone)]
pub(super) struct Status {
    pub(super) state: JobState,
    pub(super) end_time: Option<i64>,
    /// (ms since the Unix epoch, message).
    pub(super) exceptions: Vec<(i64, String)>,
}

impl JobEntry {
    /// The current state, end time and exceptions.
    pub fn status(&self) -> (JobState, Option<i64>, Vec<(i64, String)>) {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        (s.state, s.end_time, s.exceptions.clone())
    }

    /// The JSON answer `what` about this job: rendered by `render` at most
    /// once per `ttl` and shared by the requests in between, so that many
    /// clients polling a job cost little more than one.
    pub fn rendered(
        &self,
        what: &'static str,
        ttl: Duration,
        render: impl FnOnce() -> Value,
    ) -> Bytes {
        let encode = |v: Value| Bytes::from(serde_json::to_vec(&v).unwrap_or_default());
        if ttl.is_zero() {
            return encode(render());
        }
        // Held while rendering, so a crowd of requests renders once.
        let mut cache = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, bytes)) = cache.get(what)
            && at.elapsed() < ttl
        {
            return bytes.clone();
        }
        let bytes = encode(render());
        cache.insert(what, (Instant::now(), bytes.clone()));
        bytes
    }

    /// The request that submitted it, as recorded (its operators name
    /// bundles by `sha256:<id>`); `None` for a job the server did not
    /// submit (the one `weir run` serves).
    pub fn request(&self) -> Option<super::model::SubmitRequest> {
        self.request_and_fingerprint().0
    }

    /// Its request, and the fingerprint of the request as the client sent
    /// it (see [`super::model::SubmitRequest::fingerprint`]).
    pub fn request_and_fingerprint(&self) -> (Option<super::model::SubmitRequest>, Option<String>) {
        let record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        match record.as_ref() {
            Some(r) => (Some(r.request.clone()), r.submitted.clone()),
            None => (None, None),
        }
    }

    /// Whether its tasks are running.
    pub fn is_running(&self) -> bool {
        matches!(self.status().0, JobState::Running | JobState::Cancelling)
    }

    /// Sets its state (and end time and exception), then writes its record
    /// if it has one.
    pub(super) fn set_state(
        &self,
        store: Option<&JobStore>,
        state: JobState,
        exception: Option<String>,
    ) -> Result<(), SessionError> {
        self.change_state(store, |_| Some((state, exception)))
            .map(|_| ())
    }

    /// Moves it to `to` only if it is in state `from` (a compare-and-set,
    /// so that a cancel and the job's end cannot both win); returns the
    /// state it found.
    pub(super) fn transition(
        &self,
        store: Option<&JobStore>,
        from: JobState,
        to: JobState,
    ) -> Result<JobState, SessionError> {
        self.change_state(store, |now| (now == from).then_some((to, None)))
    }

    /// Its end, as the runner saw it: `state`, except that a job whose
    /// cancel was accepted ends CANCELED even if its input ended first
    /// (Flink's rule).
    pub(super) fn end(
        &self,
        store: Option<&JobStore>,
        state: JobState,
        exception: Option<String>,
    ) -> Result<JobState, SessionError> {
        let mut ended = state;
        self.change_state(store, |now| {
            if now == JobState::Cancelling && state == JobState::Finished {
                ended = JobState::Canceled;
            }
            Some((ended, exception))
        })?;
        Ok(ended)
    }

    /// Applies `change` (given the current state; `None` leaves it) and
    /// writes the record while still holding the state, so the record is
    /// written in the order the state changed.
    fn change_state(
        &self,
        store: Option<&JobStore>,
        change: impl FnOnce(JobState) -> Option<(JobState, Option<String>)>,
    ) -> Result<JobState, SessionError> {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let found = s.state;
        let Some((state, exception)) = change(found) else {
            return Ok(found);
        };
        let mut next = s.clone();
        next.state = state;
        if state.is_terminal() {
            next.end_time = Some(epoch_ms());
        }
        if let Some(e) = exception {
            next.exceptions.push((epoch_ms(), e));
        }
        // Recorded first: a state that cannot be recorded is not taken.
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(store), Some(r)) = (store, record.as_mut()) {
            let mut updated = r.clone();
            updated.state = next.state;
            updated.end_time = next.end_time;
            updated.exceptions = next.exceptions.clone();
            store
                .save(&updated)
                .map_err(|e| SessionError::internal("cannot record the job's state", e))?;
            *r = updated;
        }
        *s = next;
        Ok(found)
    }
}
