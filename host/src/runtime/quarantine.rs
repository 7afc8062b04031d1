//! The dead-letter quarantine (`weir.dead-letter.*`): a record that makes
//! an operator trap, time out or run out of memory more than
//! `max-failures` times in a row, the last time in a call of its own, is
//! written to the job's dead-letter file and skipped from then on.
//!
//! Every record of a failing call gets a strike (the job then restarts
//! from its checkpoint, as without quarantine). After the restore, a batch
//! that holds a suspect is split so that each suspect goes to the guest
//! alone: the poison record then fails on its own, and an innocent one
//! that succeeds alone is cleared. Records are recognised by content (a
//! fingerprint of input side, key, value and timestamp), since batches
//! are composed anew after a restart. Nothing is undone in place: a
//! failing call may have written state, so every retry goes through the
//! restore a restart does. The table lives as long as the job (restarts
//! and region failovers included) and is seeded from the dead-letter file,
//! so a job that starts again skips what it quarantined before.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use weir_wire::{BatchBuilder, BatchReader, ElementRef, WireError};

use crate::channel::Batch;
use crate::clock::epoch_ms;
use crate::sandbox::{GuestFailure, GuestFailureKind};
use crate::sink::dead_letter::{DEAD_LETTER_FORMAT, DeadLetter, DeadLetterFile, text_or_hex};

/// How many quarantined records the job keeps in memory to show.
const RECENT_KEPT: usize = 100;

/// A record's fingerprint.
pub type Fingerprint = u128;

/// The fingerprint of element `e` on the first input (or the second).
pub fn fingerprint(second: bool, e: &ElementRef<'_>) -> Fingerprint {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&[u8::from(second)]);
    match e.key {
        Some(k) => {
            h.update(&[1]);
            h.update(&(k.len() as u64).to_le_bytes());
            h.update(k);
        }
        None => h.update(&[0]),
    }
    h.update(&(e.value.len() as u64).to_le_bytes());
    h.update(e.value);
    match e.timestamp {
        Some(t) => {
            h.update(&[1]);
            h.update(&t.to_le_bytes());
        }
        None => h.update(&[0]),
    }
    h.digest128()
}

/// A piece of a batch, in order: what goes to the guest in one call.
#[derive(Debug)]
pub enum Part {
    /// Records that are not suspects, in one call.
    Run(Batch),
    /// One suspect, alone.
    Alone(Batch, Fingerprint),
}

/// Where a failure happened: the operator, its subtask, and the last
/// checkpoint the subtask passed.
#[derive(Debug, Clone)]
pub struct Culprit<'a> {
    /// The operator's uid.
    pub uid: &'a str,
    /// The subtask.
    pub subtask: u32,
    /// The last checkpoint it passed (0: none).
    pub checkpoint: u64,
}

#[derive(Debug, Default)]
struct Table {
    /// Per operator uid, strikes per suspect.
    suspects: HashMap<String, HashMap<Fingerprint, u32>>,
    /// Per operator uid, the quarantined records.
    quarantined: HashMap<String, HashSet<Fingerprint>>,
    recent: Vec<DeadLetter>,
}

/// A job's quarantine.
#[derive(Debug)]
pub struct Quarantine {
    max_failures: u32,
    table: Mutex<Table>,
    file: Mutex<DeadLetterFile>,
    /// Suspects and quarantined records: while there are none, batches go
    /// to the guest whole, unexamined.
    entries: AtomicUsize,
    /// Records quarantined by this job, the file's earlier ones included.
    count: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Quarantine {
    /// A quarantine writing to `file`, seeded with the records it holds.
    pub fn new(max_failures: u32, file: DeadLetterFile, held: Vec<DeadLetter>) -> Self {
        let mut table = Table::default();
        for r in &held {
            if let Ok(fp) = Fingerprint::from_str_radix(&r.fingerprint, 16) {
                let set = table.quarantined.entry(r.operator.clone()).or_default();
                set.insert(fp);
            }
        }
        let entries = table.quarantined.values().map(HashSet::len).sum();
        let count = held.len() as u64;
        table.recent = held;
        let older = table.recent.len().saturating_sub(RECENT_KEPT);
        table.recent.drain(..older);
        Quarantine {
            max_failures,
            table: Mutex::new(table),
            file: Mutex::new(file),
            entries: AtomicUsize::new(entries),
            count: AtomicU64::new(count),
        }
    }

    /// Records quarantined by the job so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The records quarantined most recently (at most 100), oldest first.
    pub fn recent(&self) -> Vec<DeadLetter> {
        lock(&self.table).recent.clone()
    }

    /// How operator `uid` should be given `batch`: `None` for whole (no
    /// record of it is a suspect or quarantined), else the parts, with
    /// quarantined records left out.
    pub fn plan(
        &self,
        uid: &str,
        second: bool,
        batch: &Batch,
    ) -> Result<Option<Vec<Part>>, WireError> {
        if self.entries.load(Ordering::Relaxed) == 0 {
            return Ok(None);
        }
        let table = lock(&self.table);
        let (suspects, quarantined) = (table.suspects.get(uid), table.quarantined.get(uid));
        if suspects.is_none_or(HashMap::is_empty) && quarantined.is_none_or(HashSet::is_empty) {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut run = BatchBuilder::default();
        let mut special = false;
        for e in BatchReader::new(&batch.data) {
            let e = e?;
            let fp = fingerprint(second, &e);
            if quarantined.is_some_and(|q| q.contains(&fp)) {
                special = true;
                continue;
            }
            if suspects.is_some_and(|s| s.contains_key(&fp)) {
                special = true;
                flush(&mut run, &mut parts);
                let mut one = BatchBuilder::default();
                one.push_ref(e);
                let (data, len) = one.take();
                parts.push(Part::Alone(Batch { data, len }, fp));
                continue;
            }
            run.push_ref(e);
        }
        flush(&mut run, &mut parts);
        Ok(special.then_some(parts))
    }

    /// A suspect went through alone: it is innocent.
    pub fn cleared(&self, uid: &str, fp: Fingerprint) {
        let mut table = lock(&self.table);
        if let Some(s) = table.suspects.get_mut(uid)
            && s.remove(&fp).is_some()
        {
            self.entries.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A call of `who` over the encoded `elements` failed with `failure`:
    /// each record gets a strike, and a record that failed alone more than
    /// `max-failures` times is written to the dead-letter file and
    /// quarantined (returned). An error means the file could not be
    /// written (then nothing is quarantined).
    pub fn blame(
        &self,
        who: &Culprit<'_>,
        second: bool,
        elements: &[u8],
        failure: &GuestFailure,
    ) -> Result<Option<DeadLetter>, String> {
        let counts = matches!(
            failure.kind,
            GuestFailureKind::Trap
                | GuestFailureKind::Timeout(_)
                | GuestFailureKind::OutOfMemory(_)
        );
        // A limit the host enforces falls on whichever record reaches it.
        if !counts || !failure.by_guest {
            return Ok(None);
        }
        let records: Vec<ElementRef<'_>> = BatchReader::new(elements)
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let alone = records.len() == 1;
        let mut table = lock(&self.table);
        let mut doomed = None;
        for e in &records {
            let fp = fingerprint(second, e);
            let strikes = table.suspects.entry(who.uid.to_owned()).or_default();
            let n = strikes.entry(fp).or_insert_with(|| {
                self.entries.fetch_add(1, Ordering::Relaxed);
                0
            });
            *n += 1;
            if alone && *n > self.max_failures {
                doomed = Some((fp, *n, *e));
            }
        }
        let Some((fp, failures, e)) = doomed else {
            return Ok(None);
        };
        let record = dead_letter(who, second, fp, failures, &e, failure);
        // Quarantined before the table is let go, so no other subtask
        // takes it meanwhile; the file is written (and fsynced) without
        // holding the table, which every batch's plan reads.
        if let Some(s) = table.suspects.get_mut(who.uid) {
            s.remove(&fp);
        }
        let set = table.quarantined.entry(who.uid.to_owned()).or_default();
        set.insert(fp);
        drop(table);
        let written = lock(&self.file).append(&record);
        let mut table = lock(&self.table);
        if let Err(e) = written {
            if let Some(set) = table.quarantined.get_mut(who.uid) {
                set.remove(&fp);
            }
            let strikes = table.suspects.entry(who.uid.to_owned()).or_default();
            strikes.insert(fp, failures);
            return Err(e);
        }
        table.recent.push(record.clone());
        if table.recent.len() > RECENT_KEPT {
            table.recent.remove(0);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(Some(record))
    }
}

/// Ends the current run of plain records as a part.
fn flush(run: &mut BatchBuilder, parts: &mut Vec<Part>) {
    if !run.is_empty() {
        let (data, len) = run.take();
        parts.push(Part::Run(Batch { data, len }));
    }
}

/// The dead-letter line of record `e`.
fn dead_letter(
    who: &Culprit<'_>,
    second: bool,
    fp: Fingerprint,
    failures: u32,
    e: &ElementRef<'_>,
    failure: &GuestFailure,
) -> DeadLetter {
    let (key, key_hex) = e.key.map_or((None, None), text_or_hex);
    let (value, value_hex) = text_or_hex(e.value);
    DeadLetter {
        v: DEAD_LETTER_FORMAT,
        fingerprint: format!("{fp:032x}"),
        operator: who.uid.to_owned(),
        subtask: who.subtask,
        input: if second { "process-second" } else { "process" }.to_owned(),
        failures,
        message: failure.to_string(),
        key,
        key_hex,
        value,
        value_hex,
        timestamp: e.timestamp,
        checkpoint: who.checkpoint,
        time: epoch_ms(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(values: &[&str]) -> Batch {
        let mut b = BatchBuilder::default();
        for v in values {
            b.push(Some(b"k"), v.as_bytes(), None);
        }
        let (data, len) = b.take();
        Batch { data, len }
    }

    fn trap() -> GuestFailure {
        GuestFailure {
            call: "process",
            kind: GuestFailureKind::Trap,
            detail: "poison".into(),
            by_guest: true,
        }
    }

    fn values(part: &Part) -> Vec<String> {
        let b = match part {
            Part::Run(b) | Part::Alone(b, _) => b,
        };
        BatchReader::new(&b.data)
            .map(|e| String::from_utf8_lossy(e.expect("element").value).into_owned())
            .collect()
    }

    fn quarantine(dir: &std::path::Path, max: u32) -> Quarantine {
        let (file, held) = DeadLetterFile::open(&dir.join("j.jsonl")).expect("open");
        Quarantine::new(max, file, held)
    }

    #[test]
    fn a_record_is_quarantined_after_failing_alone_more_than_max_failures_times() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = quarantine(dir.path(), 1);
        let who = Culprit {
            uid: "op",
            subtask: 0,
            checkpoint: 3,
        };
        let whole = batch(&["a", "bad", "c"]);
        assert!(
            q.plan("op", false, &whole).expect("plan").is_none(),
            "no entries: whole"
        );
        // Failure 1, in a batch: three suspects, none quarantined.
        assert_eq!(q.blame(&who, false, &whole.data, &trap()), Ok(None));
        // After the restore: runs and suspects alone, in order.
        let parts = q.plan("op", false, &whole).expect("plan").expect("split");
        let shown: Vec<Vec<String>> = parts.iter().map(values).collect();
        assert_eq!(shown, [["a"], ["bad"], ["c"]]);
        assert!(parts.iter().all(|p| matches!(p, Part::Alone(..))));
        // `a` goes through alone: cleared. `bad` fails alone: quarantined.
        let Part::Alone(_, a) = &parts[0] else {
            panic!()
        };
        q.cleared("op", *a);
        let Part::Alone(bad, _) = &parts[1] else {
            panic!()
        };
        let r = q
            .blame(&who, false, &bad.data, &trap())
            .expect("written")
            .expect("quarantined");
        assert_eq!(
            (r.value.as_deref(), r.failures, r.checkpoint),
            (Some("bad"), 2, 3)
        );
        assert_eq!(q.count(), 1);
        // From then on it is left out; `c` is still a suspect.
        let parts = q.plan("op", false, &whole).expect("plan").expect("split");
        let shown: Vec<Vec<String>> = parts.iter().map(values).collect();
        assert_eq!(shown, [vec!["a"], vec!["c"]]);
        // Another operator, or the second input, is not affected.
        assert!(q.plan("other", false, &whole).expect("plan").is_none());
        // A new job on the same file skips it from the start.
        drop(q);
        let q = quarantine(dir.path(), 1);
        let parts = q.plan("op", false, &whole).expect("plan").expect("split");
        assert_eq!(
            parts.iter().map(values).collect::<Vec<_>>(),
            [vec!["a", "c"]]
        );
        assert_eq!(q.count(), 1);
    }

    #[test]
    fn only_traps_timeouts_and_memory_count_and_zero_quarantines_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = quarantine(dir.path(), 0);
        let who = Culprit {
            uid: "op",
            subtask: 1,
            checkpoint: 0,
        };
        let one = batch(&["x"]);
        let mut refused = trap();
        refused.kind = GuestFailureKind::Interrupted;
        assert_eq!(q.blame(&who, false, &one.data, &refused), Ok(None));
        let mut host = trap();
        host.by_guest = false;
        assert_eq!(q.blame(&who, false, &one.data, &host), Ok(None));
        assert!(q.plan("op", false, &one).expect("plan").is_none());
        let r = q.blame(&who, true, &one.data, &trap()).expect("written");
        assert_eq!(r.map(|r| r.input), Some("process-second".to_owned()));
        assert!(
            q.plan("op", false, &one).expect("plan").is_none(),
            "the first input differs"
        );
    }
}
