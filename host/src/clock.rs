//! The wall clock, in milliseconds since the Unix epoch: the one clock that
//! checkpoint timestamps, state time-to-live stamps and guests' processing
//! time all read (and in microseconds, for latency stamps).

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn epoch_ms() -> i64 {
    epoch_micros() / 1000
}

/// Wall-clock microseconds since the Unix epoch (0 before it).
pub fn epoch_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
