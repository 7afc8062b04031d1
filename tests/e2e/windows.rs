//! Event-time windows: tumbling and session windows with out-of-order
//! and late events, allowed lateness that updates a fired window, and
//! session state that survives a SIGKILL and restore.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::checkpoints::{latest_checkpoint, sorted_output};
use crate::common::{data, output_lines, q, run, tempdir, weir};

/// The window-sum job over `events.csv` (one element per batch, so the
/// source's watermark advances between elements and `1500,a,100` arrives
/// after the watermark passed 1999), writing to `out`.
pub(crate) fn window_sum_job(out: &str) -> String {
    windows_job("events.csv", "size-ms: 1000", out)
}

/// The window-sum job over data file `input` with operator config
/// `config`, writing to `out`.
fn windows_job(input: &str, config: &str, out: &str) -> String {
    format!(
        r#"
name: window-sum
config:
  weir.batch.size: 1
sources:
  - {{ id: events, type: file, path: {input}, format: csv, out-of-orderness-ms: 500 }}
operators:
  - id: sum
    uid: window-sum
    wasm: {wasm}
    parallelism: 2
    config: {{ {config} }}
sinks:
  - {{ id: out, type: file, path: {out} }}
edges:
  - {{ from: events, to: sum, partition: hash }}
  - {{ from: sum, to: out, partition: rebalance }}
"#,
        input = q(&data(input).display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
        out = q(out),
    )
}

#[test]
fn window_sum_fires_each_window_once_with_out_of_order_events_and_drops_late_ones() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let yaml = window_sum_job(&out.display().to_string());
    let summary = run(&yaml, dir.path()).expect("job runs");
    let mut lines = output_lines(&out);
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "a\t0\t1000\t5",
            "a\t1000\t2000\t3",
            "a\t2000\t3000\t5",
            "a\t3000\t4000\t1",
            "b\t0\t1000\t2",
            "b\t2000\t3000\t7",
        ]
    );
    let sum = summary.node("sum").expect("sum node");
    assert_eq!(
        sum.user_counters,
        vec![
            ("dropped-elements".to_owned(), 0),
            ("late-elements".to_owned(), 1)
        ],
        "one late element, none without a timestamp"
    );
}

/// Runs window-sum over `input` with `config`: the sorted output and the
/// operator's (dropped, late) counters.
fn run_windows(input: &str, config: &str) -> (Vec<String>, Vec<(String, u64)>) {
    let dir = tempdir();
    let out = dir.path().join("out");
    let summary = run(
        &windows_job(input, config, &out.display().to_string()),
        dir.path(),
    )
    .expect("job runs");
    let mut lines = output_lines(&out);
    lines.sort();
    let counters = summary.node("sum").expect("sum node").user_counters.clone();
    (lines, counters)
}

fn counters(dropped: u64, late: u64) -> Vec<(String, u64)> {
    vec![
        ("dropped-elements".to_owned(), dropped),
        ("late-elements".to_owned(), late),
    ]
}

#[test]
fn allowed_lateness_fires_a_late_update_of_a_window_that_already_fired() {
    // `1500,a,100` arrives after [1000, 2000) fired (the watermark is
    // 2099) but within 1000 ms of lateness: the window is emitted again
    // with the new sum, and nothing is late.
    let (lines, c) = run_windows("events.csv", "size-ms: 1000, allowed-lateness-ms: 1000");
    assert_eq!(
        lines,
        vec![
            "a\t0\t1000\t5",
            "a\t1000\t2000\t103",
            "a\t1000\t2000\t3",
            "a\t2000\t3000\t5",
            "a\t3000\t4000\t1",
            "b\t0\t1000\t2",
            "b\t2000\t3000\t7",
        ]
    );
    assert_eq!(c, counters(0, 0));
}

#[test]
fn session_windows_merge_close_on_the_gap_and_take_late_updates_within_the_lateness() {
    // Gap 1000, lateness 2000, watermark = max timestamp - 501:
    // a's session [0, 1500) fires (sum 3) when 3000 arrives; 1200 merges
    // into it within the lateness and re-fires it as [0, 2200) with 13;
    // [3000, 4000) fires with 4; 2500 comes after [2500, 3500)'s lateness
    // ended (watermark 6499) and is late; b's session closes at the end.
    let config = "window: session, gap-ms: 1000, allowed-lateness-ms: 2000";
    let (lines, c) = run_windows("sessions.csv", config);
    assert_eq!(
        lines,
        vec![
            "a\t0\t1500\t3",
            "a\t0\t2200\t13",
            "a\t3000\t4000\t4",
            "b\t7000\t8000\t1",
        ]
    );
    assert_eq!(c, counters(0, 1));
    // Without lateness the same late element only counts.
    let (lines, c) = run_windows("sessions.csv", "window: session, gap-ms: 1000");
    assert_eq!(
        lines,
        vec!["a\t0\t1500\t3", "a\t3000\t4000\t4", "b\t7000\t8000\t1"]
    );
    assert_eq!(c, counters(0, 2));
}

/// A session-window job over generated, timestamped records
/// (rate-limited when `rate` is given), checkpointing into `dir`.
fn session_job(dir: &Path, rate: Option<u64>) -> String {
    let rate = rate.map_or(String::new(), |r| format!(", rate: {r}"));
    format!(
        r#"
name: sessions
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: gen, type: datagen, count: 60000, keys: 40, timestamp-step-ms: 1, out-of-orderness-ms: 0{rate} }}
operators:
  - {{ id: sum, uid: window-sum, wasm: {wasm}, parallelism: 2, config: {{ window: session, gap-ms: 60, allowed-lateness-ms: 30 }} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 2 }}
edges:
  - {{ from: gen, to: sum, partition: hash }}
  - {{ from: sum, to: out }}
"#,
        cache = q(&crate::common::cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
    )
}

/// Runs `yaml` with `weir run` in `dir`, SIGKILLs it once checkpoint
/// `after` (or a later one) completed, and runs it to its end restored
/// from the newest checkpoint.
fn kill_then_restore(dir: &Path, yaml: &str, after: u64) {
    let spec = dir.join("job.yaml");
    std::fs::write(&spec, yaml).expect("spec");
    let mut child = weir()
        .args(["run", "-q"])
        .arg(&spec)
        .env("WEIR_LOG", "warn")
        .spawn()
        .expect("weir run");
    let deadline = Instant::now() + Duration::from_secs(60);
    let chk = loop {
        if let Some((id, path)) = latest_checkpoint(dir)
            && id >= after
        {
            break path;
        }
        assert!(Instant::now() < deadline, "no checkpoint");
        assert!(child.try_wait().expect("wait").is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    crate::common::run_restored(&spec, &chk);
}

#[test]
fn session_windows_are_exactly_once_across_a_sigkill_and_restore() {
    let whole = tempdir();
    run(&session_job(whole.path(), None), whole.path()).expect("uninterrupted run");
    let expected = sorted_output(&whole.path().join("out"));
    assert!(expected.len() > 1000, "{} sessions", expected.len());

    let dir = tempdir();
    let d = dir.path();
    kill_then_restore(d, &session_job(d, Some(20_000)), 3);
    assert_eq!(sorted_output(&d.join("out")), expected);
}

#[test]
fn late_records_reach_the_sink_the_spec_routes_their_side_output_to() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let late = dir.path().join("late");
    let yaml = windows_job(
        "sessions.csv",
        "window: session, gap-ms: 1000, allowed-lateness-ms: 2000, late-output: too-late",
        &out.display().to_string(),
    )
    .replace(
        "sinks:\n",
        &format!(
            "sinks:\n  - {{ id: late, type: file, path: {} }}\n",
            q(&late.display().to_string())
        ),
    )
    .replace(
        "edges:\n",
        "edges:\n  - { from: sum, to: late, side-output: too-late }\n",
    );
    run(&yaml, dir.path()).expect("job runs");
    // The one element past the lateness, as it came; the main output is
    // unchanged.
    assert_eq!(output_lines(&late), vec!["a\t100"]);
    assert_eq!(sorted_output(&out).len(), 4);
    // Only an operator has side outputs.
    let bad = yaml.replace(
        "edges:\n",
        "edges:\n  - { from: events, to: late, side-output: x }\n",
    );
    let err = crate::common::graph(&bad, dir.path()).expect_err("refused");
    assert!(
        err.to_string().contains("side-output") && err.to_string().contains("has no side outputs"),
        "{err}"
    );
}

/// Window sums over a timestamped source `fast` (100,000 records, at
/// 20,000 a second with `rate`) and, unless `None`, a slow one without
/// timestamps (a record a second) with `slow_extra` settings,
/// checkpointing into `dir`.
fn two_source_windows(dir: &Path, rate: &str, slow_extra: Option<&str>) -> String {
    let slow = slow_extra.map_or(String::new(), |extra| {
        format!("  - {{ id: slow, type: datagen, count: 1000, keys: 10, rate: 1{extra} }}\n")
    });
    let slow_edge = if slow_extra.is_some() {
        "  - { from: slow, to: sum, partition: hash }\n"
    } else {
        ""
    };
    format!(
        r#"
name: idleness
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: fast, type: datagen, count: 100000, keys: 10, timestamp-step-ms: 1, out-of-orderness-ms: 0{rate} }}
{slow}operators:
  - {{ id: sum, uid: window-sum, wasm: {wasm}, config: {{ size-ms: 1000 }} }}
sinks:
  - {{ id: out, type: file, path: out }}
edges:
  - {{ from: fast, to: sum, partition: hash }}
{slow_edge}  - {{ from: sum, to: out }}
"#,
        cache = q(&crate::common::cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
    )
}

/// Runs `yaml` on a thread until `done` holds for (live job, committed
/// output), then cancels it; the committed output then.
pub(crate) fn run_until(
    yaml: &str,
    dir: &Path,
    mut done: impl FnMut(&weir::JobControl, &[String]) -> bool,
) -> Vec<String> {
    let g = crate::common::graph(yaml, dir).expect("valid spec");
    let control = weir::JobControl::default();
    /// Cancels the job when dropped, also when an assertion fails, so
    /// that the scope's join does not wait for it forever.
    struct CancelOnDrop<'a>(&'a weir::JobControl);
    impl Drop for CancelOnDrop<'_> {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    std::thread::scope(|s| {
        let job = s.spawn(|| weir::run_job(&g, &weir::RunOptions::default(), &control));
        let _cancel = CancelOnDrop(&control);
        let deadline = Instant::now() + Duration::from_secs(60);
        let committed = loop {
            let out = dir.join("out");
            let committed = if out.is_dir() {
                sorted_output(&out)
            } else {
                Vec::new()
            };
            if done(&control, &committed) {
                break committed;
            }
            assert!(
                Instant::now() < deadline,
                "never done; committed {committed:?}"
            );
            assert!(!job.is_finished(), "the job ended early");
            std::thread::sleep(Duration::from_millis(20));
        };
        control.cancel();
        let _ = job.join();
        committed
    })
}

#[test]
fn an_idle_source_does_not_hold_the_watermark_back() {
    let alone = tempdir();
    run(&two_source_windows(alone.path(), "", None), alone.path()).expect("runs");
    let expected = sorted_output(&alone.path().join("out"));
    assert_eq!(expected.len(), 1000, "100 windows of 10 keys");
    let rate = ", rate: 20000";
    // A slow source with no watermark of its own, idle between its
    // records: the fast source's windows fire (and are committed) while
    // the job runs, each exactly as the fast source alone makes it.
    let dir = tempdir();
    let yaml = two_source_windows(dir.path(), rate, Some(", idle-timeout-ms: 200"));
    let committed = run_until(&yaml, dir.path(), |_, out| out.len() >= 50);
    assert!(
        committed.iter().all(|l| expected.binary_search(l).is_ok()),
        "{committed:?}"
    );
    // Without idleness it holds the watermark back: once 20,000 records
    // of the fast source are in and two more checkpoints completed,
    // nothing has fired.
    let dir = tempdir();
    let yaml = two_source_windows(dir.path(), rate, Some(""));
    let committed = run_until_sum_took(&yaml, dir.path(), 20_000);
    assert!(committed.is_empty(), "{committed:?}");
}

/// Runs `yaml` until its node `sum` has taken `records` records and two
/// more checkpoints completed after that, then cancels it; the committed
/// output then.
pub(crate) fn run_until_sum_took(yaml: &str, dir: &Path, records: u64) -> Vec<String> {
    let sum = crate::common::graph(yaml, dir)
        .expect("valid")
        .nodes
        .iter()
        .position(|n| n.id == "sum")
        .expect("sum");
    let mut seen_at: Option<u64> = None;
    run_until(yaml, dir, |control, _| {
        let live = control.live();
        let sum_in: u64 = live.metrics.get(sum).map_or(0, |tasks| {
            tasks.iter().map(|t| t.snapshot().records_in).sum()
        });
        match seen_at {
            None if sum_in >= records => {
                seen_at = Some(live.completed_count);
                false
            }
            Some(at) => live.completed_count >= at + 2,
            None => false,
        }
    })
}

/// `n` events (`timestamp,key,value`, 2 ms apart, five keys), every third
/// after the first thousand lagging 300 to 1200 ms: some land in windows
/// that fired but are within the lateness, some are later than that.
fn lagging_events(n: u64) -> String {
    (0..n)
        .map(|i| {
            let lag = if i % 3 == 0 && i > 1000 {
                300 + (i % 7) * 150
            } else {
                0
            };
            format!(
                "{},{},1\n",
                i * 2 - lag,
                ["a", "b", "c", "d", "e"][(i % 5) as usize]
            )
        })
        .collect()
}

/// Window sums with allowed lateness over `events.csv` in `dir` (at
/// `rate` records a second if given), their late records to a second
/// sink, checkpointing into `dir`.
fn late_job(dir: &Path, rate: Option<u64>) -> String {
    let rate = rate.map_or(String::new(), |r| format!(", rate: {r}"));
    format!(
        r#"
name: lateness
config:
  weir.sandbox.cache-dir: {cache}
  weir.batch.size: 1
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
sources:
  - {{ id: events, type: file, path: events.csv, format: csv, out-of-orderness-ms: 100{rate} }}
operators:
  - {{ id: sum, uid: window-sum, wasm: {wasm}, parallelism: 2, config: {{ size-ms: 500, allowed-lateness-ms: 400, late-output: late }} }}
sinks:
  - {{ id: out, type: file, path: out, parallelism: 2 }}
  - {{ id: late, type: file, path: late }}
edges:
  - {{ from: events, to: sum, partition: hash }}
  - {{ from: sum, to: out }}
  - {{ from: sum, to: late, side-output: late }}
"#,
        cache = q(&crate::common::cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        wasm = q(weir_test_guests::WINDOW_SUM),
    )
}

#[test]
fn late_updates_and_late_records_are_exactly_once_across_a_sigkill_and_restore() {
    let events = lagging_events(20_000);
    let whole = tempdir();
    std::fs::write(whole.path().join("events.csv"), &events).expect("events");
    let summary = run(&late_job(whole.path(), None), whole.path()).expect("uninterrupted run");
    let c = summary.node("sum").expect("sum").user_counters.clone();
    let (out, late) = (
        sorted_output(&whole.path().join("out")),
        sorted_output(&whole.path().join("late")),
    );
    // Both kinds happen: fired windows updated within the lateness (a
    // window emitted more than once) and records past it.
    let late_count = c
        .iter()
        .find(|(n, _)| n == "late-elements")
        .map_or(0, |(_, v)| *v);
    assert!(
        late_count > 10 && late.len() as u64 == late_count,
        "{late_count} {}",
        late.len()
    );
    let mut windows: Vec<&str> = out
        .iter()
        .map(|l| l.rsplit_once('\t').map_or("", |(w, _)| w))
        .collect();
    let all = windows.len();
    windows.dedup();
    assert!(
        windows.len() < all,
        "some window fired again with a late update"
    );

    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("events.csv"), &events).expect("events");
    kill_then_restore(d, &late_job(d, Some(5_000)), 10);
    assert_eq!(sorted_output(&d.join("out")), out);
    assert_eq!(sorted_output(&d.join("late")), late);
}
