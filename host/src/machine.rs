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
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
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
}
