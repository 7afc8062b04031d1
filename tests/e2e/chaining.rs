//! Operator chaining: a subtask behind a forward edge runs in its
//! upstream's thread. Chained and unchained runs of a job give the same
//! output record for record, also when the job is killed and restored with
//! chaining switched between runs; chaining is switched off per job and per
//! node, and the threads that really run show it.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use weir::{JobControl, RunOptions, run_job};

use crate::checkpoints::{
    CountJob, assert_uninterrupted, kill_and_restore, kill_seed, latest_checkpoint, sorted_output,
};
use crate::common::{cache_dir, graph, output_lines, q, run_restored, tempdir};

/// `gen -> tally -> out`, all forward at parallelism 2, with the `tally`
/// operator counting its elements in operator list state and emitting
/// `seen <total>` at the end; `prefix` starts every node id, and
/// `extra` goes under `config:`. `tally` and `out` take `*_chaining`.
struct TallyJob<'a> {
    prefix: &'a str,
    count: u64,
    rate: u64,
    extra: &'a str,
    tally_chaining: &'a str,
    sink_chaining: &'a str,
}

impl TallyJob<'_> {
    fn yaml(&self, dir: &Path) -> String {
        let p = self.prefix;
        format!(
            r#"
name: tally
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
  {extra}
sources:
  - {{ id: {p}gen, type: datagen, count: {count}, keys: 100, rate: {rate}, parallelism: 2 }}
operators:
  - {{ id: {p}tally, uid: tally, wasm: {wasm}, parallelism: 2{tally} }}
sinks:
  - {{ id: {p}out, type: file, path: out, parallelism: 2{sink} }}
edges:
  - {{ from: {p}gen, to: {p}tally }}
  - {{ from: {p}tally, to: {p}out }}
"#,
            cache = q(&cache_dir().display().to_string()),
            checkpoints = q(&dir.join("checkpoints").display().to_string()),
            extra = self.extra,
            count = self.count,
            rate = self.rate,
            wasm = q(weir_test_guests::SUBTASK_COUNT),
            tally = self.tally_chaining,
            sink = self.sink_chaining,
        )
    }
}

impl Default for TallyJob<'_> {
    fn default() -> Self {
        TallyJob {
            prefix: "",
            count: 200_000,
            rate: 40_000,
            extra: "",
            tally_chaining: "",
            sink_chaining: "",
        }
    }
}

/// The `seen <n>` totals among `lines`, and the other lines, sorted.
fn split_totals(lines: Vec<String>) -> (Vec<u64>, Vec<String>) {
    let (seen, mut rest): (Vec<String>, Vec<String>) =
        lines.into_iter().partition(|l| l.starts_with("seen "));
    rest.sort();
    let mut totals: Vec<u64> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("seen ")?.parse().ok())
        .collect();
    totals.sort_unstable();
    (totals, rest)
}

/// Runs `jobs` in turn (chained, unchained, ...), each killed with SIGKILL
/// at a random moment and restored from the newest checkpoint under `dir`,
/// then the first one to its end from there.
fn kill_alternating(jobs: &[&Path], dir: &Path, kills: u32) {
    let mut seed = kill_seed();
    for k in 0..kills as usize {
        kill_and_restore(jobs[k % jobs.len()], dir, 1, (300, 500), &mut seed);
    }
    let (_, last) = latest_checkpoint(dir).expect("a checkpoint completed");
    run_restored(jobs[0], &last);
}

#[test]
fn a_keyed_count_switching_chaining_across_kills_and_restores_is_exactly_once() {
    // gen -> hostile (forwarding) is a forward edge at parallelism 1:
    // chained, as count -> out is; the unchained runs give every node a
    // thread. Each restore switches, so chained runs restore unchained
    // snapshots and back.
    let (count, keys) = (300_000, 2_000);
    let dir = tempdir();
    let d = dir.path();
    let mut jobs = Vec::new();
    for chaining in [true, false] {
        let extra = format!("pipeline.operator-chaining.enabled: {chaining}");
        let spec = CountJob {
            count,
            keys,
            rate: Some(40_000),
            hostile: Some("mode: pass"),
            extra: &extra,
            ..CountJob::default()
        };
        let path = d.join(format!("job-{chaining}.yaml"));
        std::fs::write(&path, spec.yaml(d)).expect("write spec");
        jobs.push(path);
    }
    let g = graph(&std::fs::read_to_string(&jobs[0]).expect("spec"), d).expect("valid");
    assert_eq!(
        g.describe_tasks(),
        [
            "gen -> hostile (parallelism 1)",
            "count -> out (parallelism 2)"
        ]
    );
    let refs: Vec<&Path> = jobs.iter().map(|p| p.as_path()).collect();
    kill_alternating(&refs, d, 4);
    assert_uninterrupted(&sorted_output(&d.join("out")), count, keys);
}

#[test]
fn a_chained_operators_own_state_survives_kills_and_restores_with_chaining_switched() {
    let count = 200_000;
    let dir = tempdir();
    let d = dir.path();
    // The reference: one unchained run without interruption.
    let reference = tempdir();
    let unchained = TallyJob {
        count,
        extra: "pipeline.operator-chaining.enabled: false",
        ..TallyJob::default()
    };
    let g = graph(&unchained.yaml(reference.path()), reference.path()).expect("valid");
    let summary = run_job(&g, &RunOptions::default(), &JobControl::default()).expect("runs");
    assert_eq!(summary.tasks.len(), 3, "{:?}", summary.tasks);
    let (totals, want) = split_totals(output_lines(&reference.path().join("out")));
    assert_eq!(totals.iter().sum::<u64>(), count);
    assert_eq!(want.len() as u64, count);

    let chained = TallyJob {
        count,
        ..TallyJob::default()
    };
    let mut jobs = Vec::new();
    for (name, spec) in [("chained", &chained), ("unchained", &unchained)] {
        let path = d.join(format!("{name}.yaml"));
        std::fs::write(&path, spec.yaml(d)).expect("write spec");
        jobs.push(path);
    }
    let refs: Vec<&Path> = jobs.iter().map(|p| p.as_path()).collect();
    kill_alternating(&refs, d, 4);
    let (totals, got) = split_totals(output_lines(&d.join("out")));
    // Every element once, and the operator state counted each once.
    assert_eq!(got, want, "the elements differ from the unchained run's");
    assert_eq!(totals.len(), 2, "{totals:?}");
    assert_eq!(totals.iter().sum::<u64>(), count, "{totals:?}");
}

/// The names of this process's threads that start with `prefix`, with
/// the subtask suffix they carry.
fn threads_named(prefix: &str) -> BTreeSet<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return BTreeSet::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn chaining_switches_off_per_job_and_per_node_and_the_threads_show_it() {
    let cases: [(&str, &str, &str, &str, &[&str]); 4] = [
        ("ca", "", "", "", &["cagen"]),
        (
            "cb",
            "pipeline.operator-chaining.enabled: false",
            "",
            "",
            &["cbgen", "cbtally", "cbout"],
        ),
        (
            "cc",
            "",
            ", chaining: false",
            "",
            &["ccgen", "cctally", "ccout"],
        ),
        ("cd", "", "", ", chaining: false", &["cdgen", "cdout"]),
    ];
    let mut outputs = Vec::new();
    for (prefix, extra, tally, sink, want) in cases {
        let dir = tempdir();
        let d = dir.path();
        let spec = TallyJob {
            prefix,
            count: 30_000,
            rate: 20_000,
            extra,
            tally_chaining: tally,
            sink_chaining: sink,
        };
        let g = graph(&spec.yaml(d), d).expect("valid");
        let seen = std::sync::Mutex::new(BTreeSet::new());
        let summary = std::thread::scope(|s| {
            let job = s.spawn(|| run_job(&g, &RunOptions::default(), &JobControl::default()));
            while !job.is_finished() {
                seen.lock().expect("lock").extend(threads_named(prefix));
                std::thread::sleep(Duration::from_millis(20));
            }
            job.join().expect("job thread")
        })
        .expect("job runs");
        let seen = seen.into_inner().expect("lock");
        // A thread per task and subtask, named `<head>[<subtask>]`.
        let heads: BTreeSet<&str> = seen.iter().filter_map(|n| n.split('[').next()).collect();
        let want: BTreeSet<&str> = want.iter().copied().collect();
        assert_eq!(heads, want, "{prefix}: threads {seen:?}");
        assert_eq!(seen.len(), 2 * want.len(), "{prefix}: {seen:?}");
        // The summary lists the same tasks.
        let tasks: BTreeSet<&str> = summary
            .tasks
            .iter()
            .filter_map(|t| t.split(' ').next())
            .collect();
        assert_eq!(tasks, want, "{:?}", summary.tasks);
        outputs.push(split_totals(output_lines(&d.join("out"))));
    }
    for o in &outputs[1..] {
        assert_eq!(o, &outputs[0], "chained and unchained outputs differ");
    }
}

#[test]
fn a_chained_operators_failure_names_it_under_region_failover() {
    // gen -> bad -> out is one chain per subtask, two failover regions;
    // the operator's trap fails the job, named as the operator's, not as
    // the source whose thread it ran in.
    let dir = tempdir();
    let d = dir.path();
    let yaml = format!(
        r#"
name: chained-trap
config:
  weir.sandbox.cache-dir: {cache}
  jobmanager.execution.failover-strategy: region
  restart-strategy.type: none
sources:
  - {{ id: gen, type: datagen, count: 20000, keys: 10, parallelism: 2 }}
operators:
  - {{ id: bad, uid: bad, wasm: {hostile}, parallelism: 2, config: {{ mode: trap }} }}
sinks:
  - {{ id: out, type: discard, parallelism: 2 }}
edges:
  - {{ from: gen, to: bad }}
  - {{ from: bad, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        hostile = q(weir_test_guests::HOSTILE),
    );
    let g = graph(&yaml, d).expect("valid");
    assert_eq!(g.describe_tasks(), ["gen -> bad -> out (parallelism 2)"]);
    let err = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("the trap fails the job");
    let text = err.to_string();
    assert!(
        text.starts_with("operator `bad` (uid `bad`)") && text.contains("trap in process"),
        "{text}"
    );
}
