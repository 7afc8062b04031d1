//! What a Kafka source subtask reports about its consumer, from
//! librdkafka's statistics (every `statistics.interval.ms`, 1 s unless the
//! source's properties say otherwise): the metrics Flink's `KafkaSource`
//! shows, under its names.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;

use crate::metrics::NamedMetrics;

/// Flink's metric group of a Kafka source's consumer metrics.
const GROUP: &str = "KafkaSourceReader.KafkaConsumer";

/// The consumer's figures from its latest statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ConsumerFigures {
    /// The most records any owned partition is behind its end.
    pub records_lag_max: i64,
    /// Records behind over every owned partition (Flink's
    /// `pendingRecords`).
    pub pending_records: i64,
    /// Fetch requests a second, between the last two statistics.
    pub fetch_rate: f64,
    /// Records the consumer received.
    pub records_consumed_total: u64,
}

impl ConsumerFigures {
    /// The figures as gauges and counters, with Flink's names.
    pub fn metrics(&self) -> NamedMetrics {
        let counters = vec![(
            format!("{GROUP}.records-consumed-total"),
            self.records_consumed_total,
        )];
        let gauges = vec![
            (
                format!("{GROUP}.records-lag-max"),
                self.records_lag_max as f64,
            ),
            (format!("{GROUP}.fetch-rate"), self.fetch_rate),
            ("pendingRecords".to_owned(), self.pending_records as f64),
        ];
        NamedMetrics { counters, gauges }
    }
}

/// The client context of a Kafka source's consumer: keeps the figures of
/// its statistics.
#[derive(Debug, Default, Clone)]
pub struct ConsumerStats {
    inner: Arc<Mutex<Latest>>,
}

#[derive(Debug, Default)]
struct Latest {
    figures: ConsumerFigures,
    /// Fetch requests sent so far, and when that was read.
    fetches: Option<(i64, Instant)>,
}

impl ConsumerStats {
    /// The figures of the latest statistics (zero before the first).
    pub fn figures(&self) -> ConsumerFigures {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).figures
    }
}

impl ClientContext for ConsumerStats {
    fn stats(&self, stats: Statistics) {
        let lags = stats
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            // librdkafka lists an internal partition -1, and partitions it
            // does not consume with a lag of -1.
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag);
        let (max, sum) = lags.fold((0, 0), |(m, s), l| (m.max(l), s + l));
        let fetches: i64 = stats
            .brokers
            .values()
            .filter_map(|b| b.req.get("Fetch"))
            .sum();
        let now = Instant::now();
        let mut latest = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let rate = match latest.fetches {
            Some((before, at)) if now > at => {
                (fetches - before).max(0) as f64 / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        latest.fetches = Some((fetches, now));
        latest.figures = ConsumerFigures {
            records_lag_max: max,
            pending_records: sum,
            fetch_rate: rate,
            records_consumed_total: u64::try_from(stats.rxmsgs).unwrap_or(0),
        };
    }
}

impl ConsumerContext for ConsumerStats {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_carry_flinks_names() {
        let f = ConsumerFigures {
            records_lag_max: 7,
            pending_records: 9,
            fetch_rate: 2.5,
            records_consumed_total: 100,
        };
        let NamedMetrics { counters, gauges } = f.metrics();
        assert_eq!(
            counters,
            vec![(
                "KafkaSourceReader.KafkaConsumer.records-consumed-total".to_owned(),
                100
            )]
        );
        assert!(gauges.contains(&(
            "KafkaSourceReader.KafkaConsumer.records-lag-max".to_owned(),
            7.0
        )));
        assert!(gauges.contains(&("pendingRecords".to_owned(), 9.0)));
    }
}
