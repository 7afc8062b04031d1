//! The exactly-once Kafka sink against a real broker (tansu, one per
//! test): a Kafka → keyed count → Kafka job killed and restored (from
//! checkpoints in S3, a moto server of its own), rescaled through a
//! savepoint in S3, restarted under its strategy while the broker is
//! stopped (the broker's log kept in S3, so it survives its restart), and
//! a zombie of a frozen attempt fenced.
//!
//! tansu does not tell a `read_committed` consumer which transactions were
//! aborted, so the committed output is read from the topic's log itself,
//! applying the transaction markers there ([`crate::kafka_log`]): a record
//! counts only if its transaction's producer wrote a commit marker after
//! it. That is what a `read_committed` consumer of a complete broker sees.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use weir::{JobControl, RestorePoint, RunOptions, SavepointFormat, run_job};

use crate::checkpoints::{kill_and_restore_from, latest_checkpoint, spawn};
use crate::common::{graph, q, tempdir};
use crate::kafka::{Broker, count_job, fill};
use crate::kafka_log::{committed_records, transactional_view};
use crate::s3::{KEY, S3Server, SECRET, latest_in};
use crate::savepoints::start;

/// A job counting the records of topic `orders` (a bounded Kafka source,
/// read to the end it has when the job first starts) into topic `counts`
/// through the exactly-once sink, at parallelism `p`, checkpointing every
/// 100 ms; `extra` is added to its config.
fn count_yaml(dir: &Path, broker: &Broker, p: u32, rate: Option<u64>, extra: &str) -> String {
    count_yaml_with(dir, broker, (p, rate), extra, "")
}

/// [`count_yaml`] with more lines (`sink_extra`) in the sink's `kafka:`.
fn count_yaml_with(
    dir: &Path,
    broker: &Broker,
    (p, rate): (u32, Option<u64>),
    extra: &str,
    sink_extra: &str,
) -> String {
    let sink = format!(
        r#"  - id: out
    type: kafka
    parallelism: {p}
    kafka:
      bootstrap-servers: {addr}
      topic: counts
      delivery-guarantee: exactly-once
      transactional-id-prefix: weir-counts
      create-topic: {{ partitions: 4 }}{sink_extra}"#,
        addr = broker.addr
    );
    count_job(dir, broker, "orders", (p, rate), extra, &sink)
}

/// The committed records of topic `counts` as sorted `key<TAB>value`
/// lines, the file sink's format.
///
/// Each key's running counts must also grow along its partition: a
/// restore that wrote a subtask's lost transactions out of order would
/// show a key's count 5 before its 4.
fn committed_counts(broker: &Broker) -> Vec<String> {
    let records = committed_records(&broker.addr, "counts").expect("read the log of `counts`");
    let mut last: std::collections::HashMap<(i32, &[u8]), u64> = Default::default();
    for r in &records {
        let key = r.key.as_deref().unwrap_or_default();
        let count: u64 = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
            .parse()
            .expect("a count");
        let before = last.insert((r.partition, key), count).unwrap_or(0);
        assert!(
            count > before,
            "key {} has count {count} after {before} at {}/{}",
            String::from_utf8_lossy(key),
            r.partition,
            r.offset
        );
    }
    let mut lines: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{}\t{}",
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
            )
        })
        .collect();
    lines.sort();
    lines
}

/// A broker whose topic `orders` holds `count` records over `keys` keys,
/// a folder for a job, and the path of its spec there.
fn filled(count: u64, keys: u64) -> (Broker, tempfile::TempDir, PathBuf) {
    let broker = Broker::start();
    fill(&broker, "orders", count, keys);
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    (broker, dir, job)
}

fn seed() -> u64 {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill schedule seed: {seed}");
    seed
}

/// Runs `job` from `from` to its end and fails the test if it fails; its
/// warnings.
fn run_to_end(job: &Path, from: Option<&Path>) -> String {
    let out = spawn(job, from).wait_with_output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "the run failed: {stderr}");
    stderr
}

/// Waits until a checkpoint numbered `id` or higher completed under `dir`.
fn wait_for_checkpoint(dir: &Path, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest_checkpoint(dir).is_none_or(|(n, _)| n < id) {
        assert!(
            Instant::now() < deadline,
            "checkpoint {id} did not complete"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_kafka_to_kafka_count_is_exactly_once_through_sigkills_and_a_rescale() {
    let (count, keys) = (200_000, 2_000);
    let (broker, dir, job) = filled(count, keys);
    // Checkpoints go to S3 (a moto server of this test's own).
    let s3 = S3Server::start();
    let bucket = s3.client("weir-checkpoints");
    let local = q(&dir.path().join("checkpoints").display().to_string());
    let in_bucket = |p: u32, rate: Option<u64>| {
        let extra: String = s3
            .yaml(KEY, SECRET)
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect();
        count_yaml(dir.path(), &broker, p, rate, &extra)
            .replace(&local, "s3://weir-checkpoints/jobs")
    };
    let latest = || latest_in(&bucket, "jobs");
    // Rate-limited, so that the kills land while it reads and writes.
    std::fs::write(&job, in_bucket(2, Some(15_000))).expect("spec");
    let mut seed = seed();
    // A restore first fences the killed attempt's producers and settles
    // what they left (about a second, with the broker's round trips), so
    // each run lives long enough to complete checkpoints of its own.
    let restored_from = kill_and_restore_from(&job, 5, (2000, 1000), &mut seed, &latest);
    // Runs progress from one to the next (on a loaded machine a run may
    // be killed before its first checkpoint, and the next restores the
    // same one again).
    assert!(
        restored_from.len() >= 3
            && restored_from.windows(2).all(|w| w[0] <= w[1])
            && restored_from.first() < restored_from.last(),
        "restored from checkpoints {restored_from:?}"
    );
    // The kills left transactions open: the log holds records that are
    // not (or not yet) committed.
    let view = transactional_view(&broker.addr, "counts").expect("log");
    assert!(
        !view.aborted.is_empty() || !view.open.is_empty(),
        "no kill interrupted a transaction"
    );
    // The last run restores at parallelism 3 from the bucket.
    let (_, last) = latest().expect("a checkpoint in the bucket");
    std::fs::write(&job, in_bucket(3, None)).expect("spec");
    run_to_end(&job, Some(&last));
    assert_exact_or_explain(&broker, count, keys);
}

#[test]
#[ignore = "tansu (S3 engine) loses records of transactions it acknowledged when it is stopped and restarted under load, even with its clients cut off first: 1 run in 6 under two busy loops missed records that were nowhere in its log; run it with --ignored against a broker that keeps what it acknowledged"]
fn a_broker_stopped_and_restarted_mid_run_leaves_the_output_exactly_once() {
    let (count, keys) = (40_000, 400);
    // The broker keeps its log in S3, so it survives its restart; its
    // clients are cut off a second before it stops (see Broker::start_in).
    let s3 = S3Server::start();
    let broker = Broker::start_in(&s3);
    fill(&broker, "orders", count, keys);
    let dir = tempdir();
    // A checkpoint not complete within 2 s fails, no failed checkpoint is
    // tolerated, and a transaction that cannot commit fails the job: so
    // the job fails while the broker is away, and restarts under its
    // strategy until the broker is back.
    // Each call to the broker waits at most 10 s (max.block.ms) for it.
    let yaml = count_yaml_with(
        dir.path(),
        &broker,
        (2, Some(2_000)),
        "  execution.checkpointing.timeout: 2s\n  restart-strategy.type: fixed-delay\n  restart-strategy.fixed-delay.attempts: 60\n  restart-strategy.fixed-delay.delay: 1s",
        "\n      properties: { max.block.ms: 10000 }",
    );
    let g = graph(&yaml, dir.path()).expect("spec");
    let control = JobControl::default();
    let summary = std::thread::scope(|s| {
        let run = s.spawn(|| run_job(&g, &RunOptions::default(), &control));
        wait_for_checkpoint(dir.path(), 3);
        broker.stop();
        // Each call to the stopped broker gives up after 10 s (a flush,
        // a commit), so failing takes a few of them, longer under load.
        let deadline = Instant::now() + Duration::from_secs(300);
        let failed = loop {
            if !control.live().restart_history.is_empty() || run.is_finished() {
                break !control.live().restart_history.is_empty();
            }
            if Instant::now() > deadline {
                control.cancel();
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // The restarted attempt meets the stopped broker too.
        std::thread::sleep(Duration::from_secs(2));
        broker.restart();
        assert!(
            failed,
            "the job did not fail while the broker was away (it {}; {} checkpoints completed)",
            if run.is_finished() {
                "had ended"
            } else {
                "still ran"
            },
            control.live().completed_count
        );
        run.join().expect("job thread")
    });
    let summary = summary.expect("the job ends once the broker is back");
    let causes: Vec<String> = control
        .live()
        .restart_history
        .iter()
        .map(|r| {
            format!(
                "{} (restored {:?})",
                r.cause,
                r.restored.as_ref().map(|c| c.id)
            )
        })
        .collect();
    eprintln!("{} restarts: {causes:#?}", summary.restarts);
    assert!(summary.restarts >= 1, "{causes:?}");
    assert_exact_or_explain(&broker, count, keys);
}

/// Asserts that the committed counts equal an uninterrupted run's; on a
/// difference, says where the missing records are in the log of `counts`
/// (in an aborted transaction, in an open one, or nowhere) and by which
/// producer, and how many records are extra.
fn assert_exact_or_explain(broker: &Broker, count: u64, keys: u64) {
    let got = committed_counts(broker);
    let want = crate::checkpoints::expected(count, keys);
    if got == want {
        return;
    }
    let view = transactional_view(&broker.addr, "counts").expect("read the log of `counts`");
    let line = |r: &crate::kafka_log::LogRecord| {
        format!(
            "{}\t{}",
            String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()),
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
        )
    };
    let mut left: std::collections::HashMap<&String, i64> = Default::default();
    for l in &want {
        *left.entry(l).or_default() += 1;
    }
    for l in &got {
        *left.entry(l).or_default() -= 1;
    }
    let extra: i64 = left.values().filter(|n| **n < 0).map(|n| -n).sum();
    let mut missing: std::collections::BTreeMap<String, usize> = Default::default();
    for (l, _) in left.iter().filter(|(_, n)| **n > 0) {
        let found = [("aborted", &view.aborted), ("open", &view.open)]
            .into_iter()
            .find_map(|(what, rs)| {
                rs.iter().find(|r| &line(r) == *l).map(|r| {
                    format!(
                        "{what} (partition {}, producer {:?})",
                        r.partition, r.producer
                    )
                })
            })
            .unwrap_or_else(|| "nowhere in the log".into());
        *missing.entry(found).or_default() += 1;
    }
    panic!(
        "the committed output differs from an uninterrupted run: {} of {} records, {extra} extra; the missing ones are: {missing:#?}",
        got.len(),
        want.len()
    );
}

#[test]
fn a_zombie_of_a_frozen_attempt_is_fenced_and_its_late_commits_add_nothing() {
    let (count, keys) = (100_000, 1_000);
    let (broker, dir, job) = filled(count, keys);
    // The zombie must not restart once it is fenced: a restarted attempt
    // would be a second job writing the same records.
    let yaml = count_yaml(
        dir.path(),
        &broker,
        2,
        Some(10_000),
        "  restart-strategy.type: none",
    );
    std::fs::write(&job, &yaml).expect("spec");
    let zombie = spawn(&job, None);
    // Frozen (SIGSTOP) once it has completed a few checkpoints, with
    // transactions pre-committed and open.
    wait_for_checkpoint(dir.path(), 5);
    std::thread::sleep(Duration::from_millis(300));
    let pid = zombie.id().to_string();
    let signal = |s: &str| {
        let ok = Command::new("kill").args([s, &pid]).status().expect("kill");
        assert!(ok.success(), "kill {s}");
    };
    signal("-STOP");
    // The job is restored elsewhere from the newest checkpoint and runs to
    // its end, fencing the frozen attempt's transactional ids.
    let (_, last) = latest_checkpoint(dir.path()).expect("a checkpoint");
    let restored = tempdir();
    let job2 = restored.path().join("job.yaml");
    std::fs::write(&job2, count_yaml(restored.path(), &broker, 2, None, "")).expect("spec");
    run_to_end(&job2, Some(&last));
    // The zombie wakes: its commits fail, and it ends.
    signal("-CONT");
    let out = zombie.wait_with_output().expect("zombie");
    assert!(
        !out.status.success(),
        "the fenced attempt finished as if nothing happened"
    );
    assert_exact_or_explain(&broker, count, keys);
}

#[test]
fn a_savepoint_restores_at_another_parallelism_and_writes_its_uncommitted_transactions_again() {
    let (count, keys) = (100_000, 1_000);
    let (broker, dir, _) = filled(count, keys);
    // The savepoint goes to S3.
    let s3 = S3Server::start();
    s3.bucket("weir-savepoints");
    let extra: String = s3
        .yaml(KEY, SECRET)
        .lines()
        .map(|l| format!("  {l}\n"))
        .collect();
    // No checkpoint completes during the test (every 4 minutes), so the
    // intermediate savepoint's transactions, which it pre-committed and
    // does not commit itself, are never committed by this attempt.
    let yaml = count_yaml(dir.path(), &broker, 2, Some(20_000), &extra)
        .replace("interval: 100ms", "interval: 4min");
    let running = start(&yaml, dir.path());
    running.wait_sink_records(20_000);
    let target = Path::new("s3://weir-savepoints/sp");
    let savepoint = running
        .savepoint(target, SavepointFormat::Canonical, None)
        .expect("savepoint");
    assert!(
        savepoint.path.starts_with("s3://weir-savepoints/sp/"),
        "{}",
        savepoint.path
    );
    // Records after the savepoint go into transactions no checkpoint
    // covers; the job is then cancelled.
    running.wait_sink_records(5_000);
    running.control.cancel();
    assert!(running.thread.join().expect("job thread").is_err());
    // Restored at parallelism 3: the four partitions are assigned anew,
    // and the savepoint's transactions, which the restore finds aborted
    // (fenced), are written again from the savepoint's copy.
    let g = graph(
        &count_yaml(dir.path(), &broker, 3, None, &extra),
        dir.path(),
    )
    .expect("spec");
    let point = RestorePoint::open_in(Path::new(&savepoint.path), &s3.config(KEY, SECRET));
    let options = RunOptions {
        restore: Some(point.expect("savepoint opens")),
        ..RunOptions::default()
    };
    run_job(&g, &options, &JobControl::default()).expect("restored run");
    let view = transactional_view(&broker.addr, "counts").expect("log");
    assert!(
        !view.aborted.is_empty(),
        "the savepoint's transactions were not aborted by the restore"
    );
    assert_exact_or_explain(&broker, count, keys);
}
