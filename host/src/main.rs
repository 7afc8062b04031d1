//! The `weir` command line: run and validate jobs, run benchmarks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::Value;
use weir::Config;
use weir::RestorePoint;
use weir::Sandbox;
use weir::{JobControl, JobError, RunOptions, load_components, run_job};

/// Weir: a stream processor whose operators are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "weir", version)]
struct Cli {
    /// Configuration file (default: ./weir.yaml if it exists, else the
    /// built-in defaults).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs a job in this process until its sources end.
    Run(RunArgs),
    /// Lists retained checkpoints: of a checkpoint folder on this machine
    /// (`<state.checkpoints.dir>[/<job-id>]`), or of a job on a server.
    Checkpoints {
        /// A checkpoint folder, or a job id on the server.
        target: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Lists the jobs of a server.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Uploads an operator bundle (a `.wasm` component) to a server.
    Upload {
        /// The component.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Submits a job spec (YAML or JSON; `wasm` names uploaded bundles).
    Submit {
        /// The job spec.
        job: PathBuf,
        /// Default parallelism of nodes that set none.
        #[arg(long, short)]
        parallelism: Option<u32>,
        /// Start from this checkpoint or savepoint (a path on the server,
        /// under its checkpoints or savepoints folder).
        #[arg(long = "from-savepoint", short = 's')]
        from_savepoint: Option<String>,
        /// Skip restored state whose uid the job lacks.
        #[arg(long, short = 'n')]
        allow_non_restored_state: bool,
        /// CLAIM or NO_CLAIM (the server's default).
        #[arg(long = "claim-mode", value_name = "MODE")]
        claim_mode: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Takes a savepoint of a running job (prints its path), or disposes
    /// of one (`--dispose PATH`).
    Savepoint(SavepointArgs),
    /// Stops a job with a savepoint: it ends FINISHED, its output committed.
    Stop(StopArgs),
    /// Lists the savepoints a server wrote (of one job, if given).
    Savepoints {
        /// Only this job's.
        job_id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancels a job on a server.
    Cancel {
        /// The job id.
        job_id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Checks a job spec and its components without running it.
    Validate {
        /// The job spec (YAML or JSON).
        job: PathBuf,
        /// Folder that relative `wasm` paths resolve against.
        #[arg(long, env = "WEIR_OPERATORS_DIR")]
        operators_dir: Option<PathBuf>,
    },
    /// Runs a benchmark (`keyed-count`, `checkpointing`, `backends`, `savepoints`, `api`).
    Bench(weir::BenchArgs),
    /// Runs a session cluster: the REST API under /api/v1, many jobs at once.
    Serve,
}

/// `weir savepoint`.
#[derive(Debug, clap::Args)]
struct SavepointArgs {
    /// The job id (not with --dispose).
    job_id: Option<String>,
    /// The folder the savepoint goes into (default: the server's
    /// execution.checkpointing.savepoint-dir).
    target: Option<String>,
    /// canonical (any backend and parallelism) or native.
    #[arg(long = "type", value_name = "TYPE")]
    format: Option<String>,
    /// Print the trigger id and return without waiting.
    #[arg(long)]
    detached: bool,
    /// Delete this savepoint (refused if it is not one); on this machine
    /// unless a server is named.
    #[arg(long, value_name = "PATH")]
    dispose: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// `weir stop`.
#[derive(Debug, clap::Args)]
struct StopArgs {
    /// The job id.
    job_id: String,
    /// The folder the savepoint goes into.
    #[arg(long, short = 'p', value_name = "DIR")]
    savepoint_path: Option<String>,
    /// End the input first: event-time timers fire, windows flush.
    #[arg(long, short)]
    drain: bool,
    /// canonical or native.
    #[arg(long = "type", value_name = "TYPE")]
    format: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// How a CLI verb reaches a server.
#[derive(Debug, clap::Args)]
struct Remote {
    /// The server (default: http://<rest.bind-address>:<rest.port>).
    #[arg(long, env = "WEIR_SERVER")]
    server: Option<String>,
    /// The API token (default: weir.server.token, or the local server's
    /// token file).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

impl Remote {
    fn client(&self, config: &Config) -> anyhow::Result<weir::Client> {
        weir::Client::new(self.server.as_deref(), self.token.as_deref(), config)
    }

    fn print(&self, value: &serde_json::Value, table: impl FnOnce(&serde_json::Value) -> String) {
        if self.json {
            println!("{value:#}");
        } else {
            print!("{}", table(value));
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs the command `cli` names; the exit code is 2 for a job spec, a
/// component or a checkpoint that is not valid.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    match cli.command {
        Cmd::Validate { job, operators_dir } => validate(&config, &job, operators_dir.as_deref()),
        Cmd::Checkpoints { target, remote } => checkpoints(&config, &target, &remote),
        Cmd::List { remote } => list(&config, &remote),
        Cmd::Upload { file, remote } => upload(&config, &file, &remote),
        Cmd::Submit {
            job,
            parallelism,
            from_savepoint,
            allow_non_restored_state,
            claim_mode,
            remote,
        } => {
            let options = weir::SubmitOptions {
                parallelism,
                savepoint_path: from_savepoint,
                allow_non_restored_state,
                claim_mode,
            };
            submit(&config, &job, &options, &remote)
        }
        Cmd::Savepoint(a) => savepoint_or_stop(&config, a, None),
        Cmd::Stop(a) => {
            let drain = a.drain;
            let args = SavepointArgs {
                job_id: Some(a.job_id),
                target: a.savepoint_path,
                format: a.format,
                detached: false,
                dispose: None,
                remote: a.remote,
            };
            savepoint_or_stop(&config, args, Some(drain))
        }
        Cmd::Savepoints { job_id, remote } => {
            let v = remote.client(&config)?.savepoints(job_id.as_deref())?;
            remote.print(&v, weir::savepoints_table);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Cancel { job_id, remote } => cancel(&config, &job_id, &remote),
        Cmd::Run(args) => match &args.server {
            Some(_) if args.dry_run => anyhow::bail!(
                "--dry-run checks a restore on this machine; for a server, POST /api/v1/jobs/dry-run"
            ),
            Some(server) => run_on_server(&config, server, args.token.as_deref(), &args),
            None => run_here(&config, args),
        },
        Cmd::Serve => serve(&config),
        Cmd::Bench(args) => {
            weir::run_bench(&args, &config)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads and validates the job spec at `job`; prints the problems and
/// gives exit code 2 if it is not valid.
fn load_spec(
    config: &Config,
    job: &Path,
    operators_dir: Option<&Path>,
) -> Result<weir::JobGraph, ExitCode> {
    weir::load_spec(job, config, operators_dir).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// `weir validate`: checks a job spec and loads its components.
fn validate(config: &Config, job: &Path, operators_dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let graph = match load_spec(config, job, operators_dir) {
        Ok(g) => g,
        Err(code) => return Ok(code),
    };
    let sandbox = Sandbox::new(&graph.config)?;
    if let Err(e) = load_components(&graph, &sandbox) {
        eprintln!("invalid job spec:\n  - {e}");
        return Ok(ExitCode::from(2));
    }
    println!(
        "{}: valid ({} nodes, {} edges)",
        job.display(),
        graph.nodes.len(),
        graph.edges.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `weir checkpoints`: lists the checkpoints of a folder on this machine
/// or of a job on a server.
fn checkpoints(config: &Config, target: &str, remote: &Remote) -> anyhow::Result<ExitCode> {
    let dir = Path::new(target);
    if remote.server.is_none() && dir.is_dir() {
        print!("{}", weir::list_checkpoints(dir)?);
    } else {
        let v = remote.client(config)?.checkpoints(target)?;
        remote.print(&v, weir::checkpoints_table);
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir list`: lists the jobs of a server.
fn list(config: &Config, remote: &Remote) -> anyhow::Result<ExitCode> {
    let v = remote.client(config)?.list()?;
    remote.print(&v, weir::jobs_table);
    Ok(ExitCode::SUCCESS)
}

/// `weir upload`: uploads a component to a server.
fn upload(config: &Config, file: &Path, remote: &Remote) -> anyhow::Result<ExitCode> {
    let v = remote.client(config)?.upload(file)?;
    remote.print(&v, |v| {
        format!(
            "uploaded {} ({}, {} bytes)\n",
            v["name"].as_str().unwrap_or(""),
            v["id"].as_str().unwrap_or(""),
            v["size"]
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// `weir submit`: submits a job spec to a server.
fn submit(
    config: &Config,
    job: &Path,
    options: &weir::SubmitOptions,
    remote: &Remote,
) -> anyhow::Result<ExitCode> {
    let v = remote.client(config)?.submit(job, options)?;
    remote.print(&v, |v| {
        format!("submitted job {}\n", v["jobid"].as_str().unwrap_or(""))
    });
    Ok(ExitCode::SUCCESS)
}

/// `weir savepoint`, `weir savepoint --dispose` and `weir stop` (`stop`:
/// with or without drain): prints the savepoint's path.
fn savepoint_or_stop(
    config: &Config,
    args: SavepointArgs,
    stop: Option<bool>,
) -> anyhow::Result<ExitCode> {
    let (dispose, remote) = (args.dispose.as_deref(), &args.remote);
    if let (Some(path), None) = (dispose, &remote.server) {
        // No server named: a savepoint on this machine.
        let gone = weir::dispose_savepoint(Path::new(path))?;
        println!("disposed of {}", gone.display());
        return Ok(ExitCode::SUCCESS);
    }
    let options = weir::SavepointOptions {
        target: args.target.clone(),
        format: args.format.clone(),
        stop,
        detached: args.detached,
    };
    let client = remote.client(config)?;
    let v = match (dispose, args.job_id.as_deref()) {
        (Some(path), _) => client.dispose(path)?,
        (None, Some(job)) => client.savepoint(job, &options)?,
        (None, None) => anyhow::bail!("name the job: weir savepoint JOB_ID [TARGET_DIR]"),
    };
    remote.print(&v, |v| match (dispose, &v["location"], &v["request-id"]) {
        (Some(p), _, _) => format!("disposed of {p}\n"),
        (_, Value::String(path), _) => format!("{path}\n"),
        (_, _, Value::String(id)) => format!("triggered: {id}\n"),
        _ => format!("{v}\n"),
    });
    Ok(ExitCode::SUCCESS)
}

/// `weir cancel`: cancels a job on a server.
fn cancel(config: &Config, job_id: &str, remote: &Remote) -> anyhow::Result<ExitCode> {
    remote.client(config)?.cancel(job_id)?;
    if remote.json {
        println!("{{\"jobid\": {job_id:?}, \"cancelled\": true}}");
    } else {
        println!("cancelling job {job_id}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `weir run` runs, and how.
#[derive(Debug, clap::Args)]
struct RunArgs {
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
    from_savepoint: Option<PathBuf>,
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

/// `weir run --server`: uploads the job's components to a server and
/// submits the job there.
fn run_on_server(
    config: &Config,
    server: &str,
    token: Option<&str>,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let options = weir::SubmitOptions {
        parallelism: None,
        savepoint_path: args
            .from_savepoint
            .as_ref()
            .map(|p| p.display().to_string()),
        allow_non_restored_state: args.allow_non_restored_state,
        claim_mode: args.claim_mode.clone(),
    };
    let client = weir::Client::new(Some(server), token, config)?;
    let v = client.run_remote(&args.job, args.operators_dir.as_deref(), &options)?;
    println!("submitted job {}", v["jobid"].as_str().unwrap_or(""));
    Ok(ExitCode::SUCCESS)
}

/// `weir run`: runs a job in this process, with the REST API of `weir
/// serve` for it, until its sources end.
fn run_here(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
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
    let from = args
        .from_savepoint
        .clone()
        .or_else(|| recovery.path.as_ref().map(|p| graph.base_dir.join(p)));
    let allow_non_restored = args.allow_non_restored_state || recovery.ignore_unclaimed_state;
    let restore = match &from {
        Some(p) => match RestorePoint::open(p) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("error: cannot restore: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        None => None,
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

/// `weir serve`: runs a session cluster until it is stopped.
fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let data_dir = config.server.data_dir.clone();
    let (token, new) =
        weir::load_or_create_token(config, &data_dir).context("cannot set up the API token")?;
    if new {
        eprintln!(
            "API token (printed once; also in {}): {token}",
            data_dir.join("token").display()
        );
    }
    let addr: std::net::SocketAddr =
        format!("{}:{}", config.server.bind_address, config.server.port)
            .parse()
            .context("rest.bind-address and rest.port do not make an address")?;
    let state = std::sync::Arc::new(
        weir::AppState::new(config, &data_dir, token, true).context("cannot start the server")?,
    );
    let runtime = weir::server_runtime(config).context("cannot start tokio")?;
    runtime.block_on(weir::serve(state, addr))?;
    Ok(ExitCode::SUCCESS)
}
