//! The API that `weir run` serves while its one job runs in this process:
//! the same routes as `weir serve`, on `rest.port` if it is free and on a
//! free port otherwise, with a token of its own and a temporary data
//! folder.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use super::{AppState, load_or_create_token, router};
use crate::config::Config;
use crate::runtime::JobControl;
use crate::session::{JobEntry, JobState};
use crate::spec::graph::JobGraph;

/// A running local API; dropping it stops the server.
pub struct LocalApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token it wants.
    pub token: String,
    state: Arc<AppState>,
    job: Arc<JobEntry>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _data: tempfile::TempDir,
}

impl LocalApi {
    /// Starts serving job `id` (run by the caller with `control`).
    pub fn start(
        config: &Config,
        id: String,
        graph: &JobGraph,
        control: Arc<JobControl>,
    ) -> anyhow::Result<Self> {
        let data = tempfile::Builder::new()
            .prefix("weir-run-")
            .tempdir()
            .context("no temporary folder for the local API")?;
        let (token, _) = load_or_create_token(config, data.path())?;
        let state = Arc::new(AppState::new(config, data.path(), token.clone(), false)?);
        let job = state.jobs.adopt(id, graph.clone(), control);
        // The job's own configuration may name reporters.
        super::reporters::start(&state, &graph.config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start tokio")?;
        let wanted: SocketAddr = format!("{}:{}", config.server.bind_address, config.server.port)
            .parse()
            .context("rest.bind-address and rest.port do not make an address")?;
        let listener = runtime.block_on(async {
            match tokio::net::TcpListener::bind(wanted).await {
                Ok(l) => Ok(l),
                Err(_) => tokio::net::TcpListener::bind(SocketAddr::new(wanted.ip(), 0)).await,
            }
        })?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let nice = config.server.api_nice;
        let app = router(state.clone());
        let limits = state.limits;
        let thread = std::thread::Builder::new()
            .name("rest-api".into())
            .spawn(move || {
                super::lower_thread_priority(nice);
                runtime.block_on(async move {
                    let served = super::listen::serve_bounded(listener, app, limits, async {
                        let _ = stopped.await;
                    })
                    .await;
                    if let Err(e) = served {
                        tracing::error!("the local REST API stopped: {e}");
                    }
                });
            })?;
        Ok(LocalApi {
            addr,
            token,
            state,
            job,
            stop: Some(stop),
            thread: Some(thread),
            _data: data,
        })
    }

    /// Records how the job ended, for the API's last answers.
    pub fn ended(&self, state: JobState, exception: Option<String>) {
        self.state.jobs.adopted_ended(&self.job, state, exception);
    }
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        self.state.reporting.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
