//! How values are written: durations as Flink writes them (`500ms`, `10 s`,
//! `1min`; a bare number is milliseconds), memory sizes as `64mb`, `1gb` (a
//! bare number is bytes), and counts.

use std::time::Duration;

/// A whole number from 1 to `max`.
pub(crate) fn parse_at_most(value: &str, max: u32) -> Result<u32, String> {
    let n = parse_positive(value)?;
    if n > max {
        return Err(format!("must be at most {max}"));
    }
    Ok(n)
}

/// A whole number, 0 included.
pub(crate) fn parse_count(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("{value:?} is not a whole number: {e}"))
}

/// A number from `min` to `max`.
pub(crate) fn parse_float(value: &str, min: f64, max: f64) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(x) if (min..=max).contains(&x) => Ok(x),
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(_) => Err(format!("{value:?} is not a number")),
    }
}

/// A whole number of at least 1.
pub(crate) fn parse_positive(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{value:?} is not a whole number: {e}")),
    }
}

/// Parses a Flink-style duration: `250ms`, `10 s`, `2min`, `1h`, or a bare
/// number of milliseconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a duration (like 500ms, 10s, 1min)"))?;
    // Flink reads units without regard to case (`60 SECONDS`).
    let unit_ms: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => return Err(format!("unknown time unit {other:?} in {value:?}")),
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

/// Parses a memory size: `64mb`, `1 gb`, `512k`, or a bare number of bytes;
/// zero is out of range.
pub fn parse_memory(value: &str) -> Result<u64, String> {
    match parse_memory_or_zero(value)? {
        0 => Err(format!("{value:?} is out of range")),
        n => Ok(n),
    }
}

/// Parses a memory size as [`parse_memory`] does, where `0` is allowed
/// (it switches something off).
pub(crate) fn parse_memory_or_zero(value: &str) -> Result<u64, String> {
    let v = value.trim().to_ascii_lowercase();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{value:?} is not a memory size (like 64mb)"))?;
    let mult: u64 = match unit.trim() {
        "" | "b" | "bytes" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown memory unit {other:?} in {value:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{value:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse_like_flink() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10 s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_memory("64mb"), Ok(64 << 20));
        assert_eq!(parse_memory("1 GB"), Ok(1 << 30));
        assert!(parse_memory("0").is_err());
        assert_eq!(parse_memory_or_zero("0"), Ok(0));
        assert_eq!(parse_memory_or_zero("0mb"), Ok(0));
        assert!(parse_memory_or_zero("-1").is_err());
    }
}
