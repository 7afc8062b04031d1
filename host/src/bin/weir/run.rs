//! `weir run`: a job in this process (with the REST API of `weir serve`
//! for it), or submitted to a server with `--server`.

use std::path::PathBuf;
use std::process::ExitCode;

use weir::Config;
use weir::RestorePoint;
use weir::{JobControl, JobError, RunOptions, run_job};

use crate::load_spec;

/// What `weir run` runs, and how.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// The job spec (YAML or JSON).
    job: PathBuf,
    /// Folder that relative `wasm` paths resolve against (default: the
    /// spec's folder).
    #[arg(long, env = "WEIR_OPERATORS_DIR")]
    operators_dir: Option<PathBuf>,
    /// No progress lines and no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Restore from this savepoint or retained checkpoint: its folder
    /// or its `_metadata` file (default: execution.state-recovery.path).
    #[arg(long = "fromSavepoint", short = 's', value_name = "PATH")]
    from_savepoint: Option<String>,
    /// CLAIM (the job owns and later deletes the snapshot) or NO_CLAIM
    /// (default: execution.state-recovery.claim-mode).
    #[arg(long = "claim-mode", alias = "claimMode", value_name = "MODE")]
    claim_mode: Option<String>,
    /// Check the restore without running: what would be restored
    /// where, and whether the components fit (exit 2 if refused).
    #[arg(long)]
    dry_run: bool,
    /// Skip checkpointed state whose uid is not in the job.
    #[arg(
        long = "allowNonRestoredState",
        short = 'n',
        alias = "allow-non-restored-state"
    )]
    allow_non_restored_state: bool,
    /// Submit the job to this `weir serve` instead of running it here
    /// (its operators' components are uploaded first).
    #[arg(long)]
    server: Option<String>,
    /// The API token for `--server`.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// `weir run`: here, or on the server `--server` names.
pub(crate) fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    match &args.server {
        Some(_) if args.dry_run => anyhow::bail!(
            "--dry-run checks a restore on this machine; for a server, POST /api/v1/jobs/dry-run"
        ),
        Some(server) => run_on_server(config, server, args.token.as_deref(), &args),
        None => run_here(config, args),
    }
}

/// `weir run --server`: uploads the job's components to a server and
/// submits the job there.
fn run_on_server(
    config: &Config,
    server: &str,
    token: Option<&str>,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    if let Some(p) = &args.from_savepoint {
        weir::parse_location(p).map_err(|e| anyhow::anyhow!("-s: {e}"))?;
    }
    let options = weir::SubmitOptions {
        parallelism: None,
        savepoint_path: args.from_savepoint.clone(),
        allow_non_restored_state: args.allow_non_restored_state,
        claim_mode: args.claim_mode.clone(),
    };
    let client = weir::Client::new(Some(server), token, config)?;
    let v = client.run_remote(&args.job, args.operators_dir.as_deref(), &options)?;
    println!("submitted job {}", v["jobid"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

/// The snapshot `weir run` starts from: `-s`, else the job's
/// `execution.state-recovery.path` (relative to its spec), if any.
fn open_restore(
    graph: &weir::JobGraph,
    from_flag: Option<PathBuf>,
) -> Result<Option<RestorePoint>, weir::RestoreError> {
    let recovery = &graph.config.checkpoint.recovery;
    let from = from_flag.or_else(|| {
        recovery
            .path
            .as_ref()
            .map(|p| weir::resolve_location(&graph.base_dir, p))
    });
    from.map(|p| RestorePoint::open_in(&p, &graph.config.s3))
        .transpose()
}

/// `weir run`: runs a job in this process, with the REST API of `weir
/// serve` for it, until its sources end.
fn run_here(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let from_flag = match args.from_savepoint.as_deref().map(weir::parse_location) {
        Some(Err(e)) => {
            eprintln!("error: -s: {e}");
            return Ok(ExitCode::from(2));
        }
        Some(Ok(p)) => Some(p),
        None => None,
    };
    let graph = match load_spec(config, &args.job, args.operators_dir.as_deref()) {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    let quiet = args.quiet;
    if !quiet {
        let plan: Vec<String> = graph
            .nodes
            .iter()
            .map(|n| format!("{} x{}", n.id, n.parallelism))
            .collect();
        eprintln!("running job `{}`: {}", graph.name, plan.join(" -> "));
    }
    // The job's configuration (weir.yaml and its `config:`) may name the
    // snapshot, the claim mode and -n; the flags win.
    let recovery = &graph.config.checkpoint.recovery;
    let allow_non_restored = args.allow_non_restored_state || recovery.ignore_unclaimed_state;
    let restore = match open_restore(&graph, from_flag) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot restore: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let claim_mode = match &args.claim_mode {
        Some(m) => weir::ClaimMode::parse(m).map_err(|e| anyhow::anyhow!("--claim-mode: {e}"))?,
        None => recovery.claim_mode,
    };
    if args.dry_run {
        let Some(point) = &restore else {
            anyhow::bail!("--dry-run checks a restore: give the snapshot with -s PATH");
        };
        let (text, restorable) = weir::dry_run(&graph, point, allow_non_restored)?;
        print!("{text}");
        return Ok(ExitCode::from(if restorable { 0 } else { 2 }));
    }
    let control = std::sync::Arc::new(JobControl::default());
    let job_id = weir::new_job_id();
    // The same REST API as `weir serve`, for this one job.
    let api = weir::LocalApi::start(config, job_id.clone(), &graph, control.clone());
    match &api {
        Ok(api) if !quiet => eprintln!(
            "REST API: http://{}/api/v1/jobs/{job_id} (Authorization: Bearer {})\nDashboard: http://{0}/#token={1}",
            api.addr, api.token
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: the REST API is not served: {e:#}"),
    }
    let options = RunOptions {
        progress: !quiet,
        restore,
        allow_non_restored_state: allow_non_restored,
        claim_mode,
        job_id: Some(job_id),
        ..RunOptions::default()
    };
    let result = run_job(&graph, &options, &control);
    if let Ok(api) = &api {
        use weir::JobState;
        match &result {
            Ok(_) => api.ended(JobState::Finished, None),
            Err(JobError::Cancelled) => api.ended(JobState::Canceled, None),
            Err(e) => api.ended(JobState::Failed, Some(e.to_string())),
        }
    }
    Ok(report(&graph.name, result, quiet))
}

/// Prints how a job run here ended; the exit code is 2 for a component or
/// a checkpoint that is not valid, 1 for another failure.
fn report(name: &str, result: Result<weir::JobSummary, JobError>, quiet: bool) -> ExitCode {
    match result {
        Ok(summary) => {
            if !quiet {
                eprint!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(e @ JobError::Component { .. }) => {
            eprintln!("invalid job spec:\n  - {e}");
            ExitCode::from(2)
        }
        Err(e @ JobError::Restore(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: job `{name}` failed: {e}");
            ExitCode::from(1)
        }
    }
}
