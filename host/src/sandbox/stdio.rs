//! A guest's stdout and stderr: lines written to the job's log through
//! the instance's [`GuestLog`] (stdout at info, stderr at warn), never to
//! the host's own stdio. Writing never waits: a stream is always ready.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use super::guest_log::{GuestLog, Level, MAX_LOG_LINE};

/// How much a guest may write in one call of a stream (WASI's permit).
const WRITE_PERMIT: usize = 64 * 1024;

/// One of a guest's output streams, as WASI's context takes it. Every
/// handle the guest gets to it (`get-stdout` makes a new one each call)
/// shares one line buffer, so the host holds at most one unfinished line
/// per stream, however many handles a guest makes.
pub(crate) struct GuestOutput {
    log: Arc<GuestLog>,
    level: Level,
    /// The line begun and not yet ended.
    pending: Arc<Mutex<Vec<u8>>>,
}

impl GuestOutput {
    /// Stdout of the instance logging to `log`.
    pub(crate) fn stdout(log: Arc<GuestLog>) -> Self {
        GuestOutput {
            log,
            level: Level::Info,
            pending: Arc::default(),
        }
    }

    /// Stderr of the instance logging to `log`.
    pub(crate) fn stderr(log: Arc<GuestLog>) -> Self {
        GuestOutput {
            log,
            level: Level::Warn,
            pending: Arc::default(),
        }
    }
}

impl Drop for GuestOutput {
    /// The instance is gone: its unfinished line is logged.
    fn drop(&mut self) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            emit(&self.log, self.level, &mut pending);
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
            pending: self.pending.clone(),
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
    /// The stream's line begun and not yet ended.
    pending: Arc<Mutex<Vec<u8>>>,
}

/// Logs the `pending` bytes as a line, and forgets them.
fn emit(log: &GuestLog, level: Level, pending: &mut Vec<u8>) {
    let line = String::from_utf8_lossy(pending);
    let line = line.strip_suffix('\r').unwrap_or(&line);
    match level {
        Level::Warn => log.stderr_line(line),
        level => log.line(level, line),
    }
    pending.clear();
}

impl OutputStream for LineWriter {
    /// At most [`WRITE_PERMIT`] bytes (WASI's contract, which the guest
    /// learns from `check-write`); more is an error, so one host call does
    /// a bounded amount of work.
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if bytes.len() > WRITE_PERMIT {
            return Err(StreamError::Trap(wasmtime::format_err!(
                "a write of {} bytes to stdout or stderr, more than the {WRITE_PERMIT} check-write allows",
                bytes.len()
            )));
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for part in bytes.split_inclusive(|b| *b == b'\n') {
            let (text, ended) = match part.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (part, false),
            };
            // A line longer than the log keeps is cut: the rest of it is
            // dropped, not held.
            let room = (MAX_LOG_LINE + 1).saturating_sub(pending.len());
            pending.extend_from_slice(&text[..text.len().min(room)]);
            if ended {
                emit(&self.log, self.level, &mut pending);
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
