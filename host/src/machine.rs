//! This machine and its processes: the host name (Flink's `host`
//! variable, and the owner of a job's folder in object storage) and
//! whether a process of it still runs.

/// The name of this machine (`localhost` if it has none).
pub fn host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".to_owned()
    } else {
        name
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`; 0 where
/// it cannot be read).
pub fn peak_rss_mib() -> f64 {
    status_kib("VmHWM:").map_or(0.0, |kb| kb / 1024.0)
}

/// Resident set size of this process now, in MiB (Linux `VmRSS`; 0 where
/// it cannot be read).
pub fn rss_mib() -> f64 {
    status_kib("VmRSS:").map_or(0.0, |kb| kb / 1024.0)
}

fn status_kib(field: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
}

/// Watches this process's resident memory on a thread of its own while a
/// piece of work runs, to tell how much that work raised it (the peak
/// over the start), which the process-wide peak cannot once an earlier
/// piece of work set it higher.
pub struct MemoryWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    watcher: Option<std::thread::JoinHandle<f64>>,
    start: f64,
}

impl MemoryWatch {
    /// Starts watching (sampling every 10 ms).
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let start = rss_mib();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let watcher = std::thread::Builder::new()
            .name("weir-memory-watch".into())
            .spawn(move || {
                let mut peak = rss_mib();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    peak = peak.max(rss_mib());
                }
                peak
            })
            .ok();
        MemoryWatch {
            stop,
            watcher,
            start,
        }
    }

    /// Stops watching: the highest resident memory seen over the start, in
    /// MiB (0 if it never rose, or could not be watched).
    pub fn finish(mut self) -> f64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let peak = self
            .watcher
            .take()
            .and_then(|w| w.join().ok())
            .unwrap_or(self.start)
            .max(rss_mib());
        (peak - self.start).max(0.0)
    }
}

impl Drop for MemoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// This process's id.
pub fn own_pid() -> u32 {
    std::process::id()
}

/// Whether process `pid` of this machine may still run: `false` only when
/// the system says there is no such process.
pub fn process_may_run(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_runs_and_a_reaped_child_does_not() {
        assert!(super::process_may_run(super::own_pid()));
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!super::process_may_run(pid));
        assert!(!super::host_name().is_empty());
    }

    #[test]
    fn a_memory_watch_sees_memory_the_work_touched() {
        let watch = super::MemoryWatch::start();
        // 64 MiB, every page written so it is resident.
        let block = vec![1u8; 64 << 20];
        std::thread::sleep(std::time::Duration::from_millis(50));
        let grown = watch.finish();
        assert!(block.iter().step_by(4096).all(|b| *b == 1));
        assert!(grown >= 32.0, "saw {grown} MiB");
    }
}
