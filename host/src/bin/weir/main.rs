//! The `weir` command line: run and validate jobs, run benchmarks, serve.
//! The verbs that talk to a server are in [`remote`], `weir run` is in
//! [`run`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use weir::Config;
use weir::Sandbox;
use weir::load_components;

mod remote;
mod run;

use remote::{
    CancelArgs, Remote, SavepointArgs, StopArgs, cancel, checkpoints, list, savepoint_or_stop,
    submit, upload,
};
use run::RunArgs;

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
    /// Lists the records the dead-letter quarantine took from a job
    /// (`weir.dead-letter.*`).
    DeadLetters {
        /// The job id.
        job_id: String,
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
    /// Cancels a job on a server; with -s, after a savepoint (Flink's
    /// deprecated cancel with savepoint: `weir stop` is the newer way).
    Cancel(CancelArgs),
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
        Cmd::DeadLetters { job_id, remote } => {
            let v = remote.client(&config)?.dead_letters(&job_id)?;
            remote.print(&v, weir::dead_letters_table);
            Ok(ExitCode::SUCCESS)
        }
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
        Cmd::Cancel(args) => cancel(&config, &args),
        Cmd::Run(args) => run::run(&config, args),
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
    // What each subtask runs in one thread (operator chaining).
    for task in graph.describe_tasks() {
        println!("  task: {task}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir serve`: runs a session cluster until it is stopped.
fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    weir::keep_files_private();
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
    weir::start_reporters(&state, config).context("cannot start the metric reporters")?;
    let runtime = weir::server_runtime(config).context("cannot start tokio")?;
    let served = runtime.block_on(weir::serve(state.clone(), addr));
    state.reporting.stop();
    served?;
    Ok(ExitCode::SUCCESS)
}
