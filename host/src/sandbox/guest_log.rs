//! [`GuestLog`], where an instance's log lines go: the world's `log`
//! import and the guest's stdout and stderr, tagged with the operator's
//! uid and subtask, cut to a bounded length and rate-limited together.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Guest log lines a second an instance may write; the rest are counted
/// and reported once the second is over.
pub(crate) const LOG_LINES_PER_SECOND: u32 = 100;

/// The longest log line kept, in bytes; the rest of a line is cut.
pub(crate) const MAX_LOG_LINE: usize = 4096;

/// The level of a guest's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Stderr lines kept to explain a trap, and their longest length kept.
const RECENT_STDERR_LINES: usize = 4;
const RECENT_STDERR_LINE: usize = 512;

/// The log of one guest instance.
#[derive(Debug)]
pub(crate) struct GuestLog {
    /// `uid[subtask/parallelism]`.
    label: String,
    window: Mutex<LogWindow>,
    /// The last stderr lines of the running call: a language runtime's
    /// report of an uncaught exception, which explains the trap after it.
    recent_stderr: Mutex<VecDeque<String>>,
}

impl GuestLog {
    /// The log of the instance labelled `label`.
    pub(crate) fn new(label: String) -> Self {
        GuestLog {
            label,
            window: Mutex::new(LogWindow::default()),
            recent_stderr: Mutex::new(VecDeque::new()),
        }
    }

    /// Writes a line the guest wrote to stderr, and keeps it (with the
    /// few before it in this call) to explain a trap.
    pub(crate) fn stderr_line(&self, message: &str) {
        self.line(Level::Warn, message);
        // Rust's advice after a panic explains nothing about the guest.
        if message.trim().is_empty() || message.starts_with("note: run with `RUST_BACKTRACE") {
            return;
        }
        let mut recent = self.recent_stderr.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_STDERR_LINES {
            recent.pop_front();
        }
        recent.push_back(cut(message, RECENT_STDERR_LINE).to_owned());
    }

    /// Forgets the stderr lines kept: a new call begins.
    pub(crate) fn begin_call(&self) {
        let mut recent = self.recent_stderr.lock().unwrap_or_else(|p| p.into_inner());
        if !recent.is_empty() {
            recent.clear();
        }
    }

    /// The stderr lines of this call kept so far, joined, if any.
    pub(crate) fn take_recent_stderr(&self) -> Option<String> {
        let mut recent = self.recent_stderr.lock().unwrap_or_else(|p| p.into_inner());
        if recent.is_empty() {
            return None;
        }
        let lines: Vec<String> = recent.drain(..).collect();
        Some(lines.join(" | "))
    }

    /// Writes `message` at `level`, cut to [`MAX_LOG_LINE`] bytes, unless
    /// the instance wrote its [`LOG_LINES_PER_SECOND`] lines this second.
    pub(crate) fn line(&self, level: Level, message: &str) {
        let (admitted, dropped) = self
            .window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit();
        if dropped > 0 {
            self.report_dropped(dropped);
        }
        if !admitted {
            return;
        }
        let message = cut(message, MAX_LOG_LINE);
        let op = self.label.as_str();
        match level {
            Level::Trace => tracing::trace!(operator = op, "{message}"),
            Level::Debug => tracing::debug!(operator = op, "{message}"),
            Level::Info => tracing::info!(operator = op, "{message}"),
            Level::Warn => tracing::warn!(operator = op, "{message}"),
            Level::Error => tracing::error!(operator = op, "{message}"),
        }
    }

    fn report_dropped(&self, dropped: u64) {
        tracing::warn!(
            operator = self.label.as_str(),
            "{dropped} guest log lines dropped (at most {LOG_LINES_PER_SECOND} a second)"
        );
    }
}

impl Drop for GuestLog {
    /// Reports the log lines dropped in the instance's last second.
    fn drop(&mut self) {
        let dropped = self.window.get_mut().map_or(0, |w| w.dropped);
        if dropped > 0 {
            self.report_dropped(dropped);
        }
    }
}

/// The first `max` bytes of `s` at most, cut at a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The rate limit of an instance's log lines.
#[derive(Debug)]
struct LogWindow {
    started: std::time::Instant,
    written: u32,
    dropped: u64,
}

impl Default for LogWindow {
    fn default() -> Self {
        LogWindow {
            started: std::time::Instant::now(),
            written: 0,
            dropped: 0,
        }
    }
}

impl LogWindow {
    /// Whether one more line may be written now; the lines dropped in the
    /// second that just ended, if any, to report.
    fn admit(&mut self) -> (bool, u64) {
        let mut ended = 0;
        if self.started.elapsed() >= std::time::Duration::from_secs(1) {
            ended = std::mem::take(&mut self.dropped);
            self.started = std::time::Instant::now();
            self.written = 0;
        }
        if self.written >= LOG_LINES_PER_SECOND {
            self.dropped += 1;
            return (false, ended);
        }
        self.written += 1;
        (true, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_past_the_rate_are_dropped_and_counted() {
        let mut w = LogWindow::default();
        for _ in 0..LOG_LINES_PER_SECOND {
            assert_eq!(w.admit(), (true, 0));
        }
        assert_eq!(w.admit(), (false, 0));
        assert_eq!(w.dropped, 1);
    }

    #[test]
    fn the_last_stderr_lines_of_a_call_are_kept_to_explain_a_trap() {
        let log = GuestLog::new("op[1/1]".into());
        log.stderr_line("from an earlier call");
        log.begin_call();
        assert_eq!(log.take_recent_stderr(), None);
        for line in [
            "Traceback",
            "  File x",
            "",
            "KeyError: 'k'",
            "thread panicked",
            "note: run with `RUST_BACKTRACE=1`",
        ] {
            log.stderr_line(line);
        }
        assert_eq!(
            log.take_recent_stderr().as_deref(),
            Some("Traceback |   File x | KeyError: 'k' | thread panicked")
        );
        assert_eq!(log.take_recent_stderr(), None);
    }

    #[test]
    fn a_long_line_is_cut_at_a_character_boundary() {
        let s = "é".repeat(10); // 2 bytes each
        assert_eq!(cut(&s, 5), "éé");
        assert_eq!(cut("short", 10), "short");
    }
}
