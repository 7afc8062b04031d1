//! The thread that starts job threads at normal CPU priority.

use std::sync::Mutex;

/// A job thread to start: its name and what it runs.
type Launch = (String, Box<dyn FnOnce() + Send>);

/// Starts job threads from a thread of normal CPU priority. A thread
/// inherits its creator's priority, and the API's threads run at a lower
/// one (`weir.server.api-nice`) that jobs must not get.
#[derive(Debug)]
pub(super) struct Launcher {
    tx: Mutex<std::sync::mpsc::Sender<Launch>>,
}

impl Launcher {
    /// Starts the launcher thread (from the caller's priority).
    pub(super) fn new() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Launch>();
        let spawned = std::thread::Builder::new()
            .name("job-launcher".into())
            .spawn(move || {
                for (name, f) in rx {
                    if let Err(e) = std::thread::Builder::new().name(name).spawn(f) {
                        tracing::error!("cannot start a job thread: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the job launcher: {e}");
        }
        Launcher { tx: Mutex::new(tx) }
    }

    /// Runs `f` on a new thread named `name`.
    pub(super) fn launch(
        &self,
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), String> {
        self.tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send((name, Box::new(f)))
            .map_err(|_| "the job launcher has stopped".to_owned())
    }
}
