//! The wall clock, in milliseconds since the Unix epoch: the one clock that
//! checkpoint timestamps, state time-to-live stamps and guests' processing
//! time all read.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn epoch_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
