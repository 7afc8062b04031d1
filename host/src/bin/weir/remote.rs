//! The `weir` verbs that talk to a server (or to the API of `weir run`):
//! list, upload, submit, checkpoints, savepoint, stop, cancel.

use std::path::Path;
use std::process::ExitCode;

use serde_json::Value;
use weir::Config;

/// `weir savepoint`.
#[derive(Debug, clap::Args)]
pub(crate) struct SavepointArgs {
    /// The job id (not with --dispose).
    pub(crate) job_id: Option<String>,
    /// The folder the savepoint goes into (default: the server's
    /// execution.checkpointing.savepoint-dir).
    pub(crate) target: Option<String>,
    /// canonical (any backend and parallelism) or native.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) format: Option<String>,
    /// Print the trigger id and return without waiting.
    #[arg(long)]
    pub(crate) detached: bool,
    /// Delete this savepoint (refused if it is not one); on this machine
    /// unless a server is named.
    #[arg(long, value_name = "PATH")]
    pub(crate) dispose: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

/// `weir stop`.
#[derive(Debug, clap::Args)]
pub(crate) struct StopArgs {
    /// The job id.
    pub(crate) job_id: String,
    /// The folder the savepoint goes into.
    #[arg(long, short = 'p', value_name = "DIR")]
    pub(crate) savepoint_path: Option<String>,
    /// End the input first: event-time timers fire, windows flush.
    #[arg(long, short)]
    pub(crate) drain: bool,
    /// canonical or native.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) format: Option<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

/// How a CLI verb reaches a server.
#[derive(Debug, clap::Args)]
pub(crate) struct Remote {
    /// The server (default: http://<rest.bind-address>:<rest.port>).
    #[arg(long, env = "WEIR_SERVER")]
    pub(crate) server: Option<String>,
    /// The API token (default: weir.server.token, or the local server's
    /// token file).
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

impl Remote {
    pub(crate) fn client(&self, config: &Config) -> anyhow::Result<weir::Client> {
        weir::Client::new(self.server.as_deref(), self.token.as_deref(), config)
    }

    pub(crate) fn print(
        &self,
        value: &serde_json::Value,
        table: impl FnOnce(&serde_json::Value) -> String,
    ) {
        if self.json {
            println!("{value:#}");
        } else {
            print!("{}", table(value));
        }
    }
}

/// `weir checkpoints`: lists the checkpoints of a folder on this machine
/// or of a job on a server.
pub(crate) fn checkpoints(
    config: &Config,
    target: &str,
    remote: &Remote,
) -> anyhow::Result<ExitCode> {
    let dir = Path::new(target);
    let in_bucket = weir::parse_location(target)
        .ok()
        .filter(|p| weir::ObjectUri::of(p).is_some());
    if let (None, Some(uri)) = (&remote.server, &in_bucket) {
        print!("{}", weir::list_checkpoints(uri, &config.s3)?);
    } else if remote.server.is_none() && dir.is_dir() {
        print!("{}", weir::list_checkpoints(dir, &config.s3)?);
    } else {
        let v = remote.client(config)?.checkpoints(target)?;
        remote.print(&v, weir::checkpoints_table);
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir list`: lists the jobs of a server.
pub(crate) fn list(config: &Config, remote: &Remote) -> anyhow::Result<ExitCode> {
    let v = remote.client(config)?.list()?;
    remote.print(&v, weir::jobs_table);
    Ok(ExitCode::SUCCESS)
}

/// `weir upload`: uploads a component to a server.
pub(crate) fn upload(config: &Config, file: &Path, remote: &Remote) -> anyhow::Result<ExitCode> {
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
pub(crate) fn submit(
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
pub(crate) fn savepoint_or_stop(
    config: &Config,
    args: SavepointArgs,
    stop: Option<bool>,
) -> anyhow::Result<ExitCode> {
    let (dispose, remote) = (args.dispose.as_deref(), &args.remote);
    if let (Some(path), None) = (dispose, &remote.server) {
        // No server named: a savepoint on this machine or in a bucket.
        let gone = weir::dispose_savepoint(&weir::parse_location(path)?, &config.s3)?;
        println!("disposed of {}", gone.display());
        return Ok(ExitCode::SUCCESS);
    }
    let options = weir::SavepointOptions {
        target: args.target.clone(),
        format: args.format.clone(),
        stop,
        detached: args.detached,
        cancel_job: false,
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

/// `weir cancel [-s [TARGET_DIR]] JOB_ID`.
#[derive(Debug, clap::Args)]
pub(crate) struct CancelArgs {
    /// Take a savepoint first, then cancel (Flink's cancel with
    /// savepoint; `weir stop` is the newer way). The savepoint goes into
    /// TARGET_DIR if given, else the server's
    /// execution.checkpointing.savepoint-dir.
    #[arg(long = "withSavepoint", short = 's')]
    pub(crate) with_savepoint: bool,
    /// `JOB_ID`, or with -s `[TARGET_DIR] JOB_ID`.
    #[arg(value_name = "[TARGET_DIR] JOB_ID", num_args = 1..=2, required = true)]
    pub(crate) args: Vec<String>,
    #[command(flatten)]
    pub(crate) remote: Remote,
}

/// `weir cancel`: cancels a job on a server; with -s, after a savepoint
/// whose path it prints.
pub(crate) fn cancel(config: &Config, args: &CancelArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let (target, job_id) = match (args.with_savepoint, args.args.as_slice()) {
        (_, [job]) => (None, job.as_str()),
        (true, [dir, job]) => (Some(dir.clone()), job.as_str()),
        _ => anyhow::bail!(
            "a target folder is given only with -s: weir cancel -s [TARGET_DIR] JOB_ID"
        ),
    };
    let client = remote.client(config)?;
    if args.with_savepoint {
        eprintln!(
            "note: cancel with savepoint is deprecated, as in Flink; `weir stop JOB_ID` takes a savepoint and ends the job with its output committed"
        );
        let options = weir::SavepointOptions {
            target,
            cancel_job: true,
            ..weir::SavepointOptions::default()
        };
        let v = client.savepoint(job_id, &options)?;
        remote.print(&v, |v| match &v["location"] {
            Value::String(path) => format!("cancelled job {job_id} with savepoint {path}\n"),
            _ => format!("{v}\n"),
        });
        return Ok(ExitCode::SUCCESS);
    }
    client.cancel(job_id)?;
    if remote.json {
        println!("{{\"jobid\": {job_id:?}, \"cancelled\": true}}");
    } else {
        println!("cancelling job {job_id}");
    }
    Ok(ExitCode::SUCCESS)
}
