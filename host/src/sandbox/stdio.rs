//! A guest's stdout and stderr: lines written to the job's log through
//! the instance's [`GuestLog`] (stdout at info, stderr at warn), never to
//! the host's own stdio. Writing never waits: a stream is always ready.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::guest_log::{GuestLog, Level, MAX_LOG_LINE};

/// How much a guest may write in one call of a stream (WASI's permit).
const WRITE_PERMIT: usize = 64 * 1024;

/// One of a guest's output streams, as WASI's context takes it.
pub(crate) struct GuestOutput {
    log: Arc<GuestLog>,
    level: Level,
}

impl GuestOutput {
    /// Stdout of the instance logging to `log`.
    pub(crate) fn stdout(log: Arc<GuestLog>) -> Self {
        GuestOutput {
            log,
            level: Level::Info,
        }
    }

    /// Stderr of the instance logging to `log`.
    pub(crate) fn stderr(log: Arc<GuestLog>) -> Self {
        GuestOutput {
            log,
            level: Level::Warn,
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            log: self.log.clone(),
            level: self.level,
            pending: Vec::new(),
        })
    }

    /// Only WASI 0.3 asks for this, and the sandbox does not link it.
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

/// Bytes written to a stream, logged a line at a time.
struct LineWriter {
    log: Arc<GuestLog>,
    level: Level,
    /// The line begun and not yet ended.
    pending: Vec<u8>,
}

impl LineWriter {
    /// Logs the pending bytes as a line, and forgets them.
    fn emit(&mut self) {
        let line = String::from_utf8_lossy(&self.pending);
        let line = line.strip_suffix('\r').unwrap_or(&line);
        match self.level {
            Level::Warn => self.log.stderr_line(line),
            level => self.log.line(level, line),
        }
        self.pending.clear();
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        for part in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, ended) = match part.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (part, false),
            };
            // A line longer than the log keeps is cut: the rest of it is
            // dropped, not held.
            let room = (MAX_LOG_LINE + 1).saturating_sub(self.pending.len());
            self.pending
                .extend_from_slice(&text[..text.len().min(room)]);
            if ended {
                self.emit();
            }
        }
        Ok(())
    }

    /// A partial line waits for its end (or the instance's end): a
    /// language runtime writing unbuffered (Python's traceback) flushes
    /// every piece of a line.
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            self.emit();
        }
    }
}
