//! The Kafka sink, `delivery-guarantee: none` and `at-least-once`: each
//! element becomes a record of the topic (its key, its value, its event
//! time as the record's timestamp), partitioned by key as Kafka's Java
//! client does (murmur2). `at-least-once` waits on every barrier until the
//! broker acknowledged everything sent before it, so a checkpoint never
//! completes over records that could still be lost; `none` only waits at
//! the end of input. The producer is idempotent, so the client's own
//! retries add no duplicates.
//!
//! A topic that does not exist fails the sink at start, naming it, unless
//! `create-topic` asks for it to be created.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use weir_wire::BatchReader;

use super::{SinkError, SinkWriter};
use crate::channel::Batch;
use crate::kafka::{client_config, create_topic, partitions};
use crate::spec::{DeliveryGuarantee, KafkaSinkSpec, PRODUCER_BUFFER_KIB};

/// How long a flush may wait for the broker's acknowledgements.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Keeps the first delivery failure the producer reports.
#[derive(Debug, Default, Clone)]
struct Deliveries {
    failed: Arc<Mutex<Option<String>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// One subtask's writer of a Kafka sink.
pub struct KafkaSink {
    producer: ThreadedProducer<Deliveries>,
    deliveries: Deliveries,
    topic: String,
    guarantee: DeliveryGuarantee,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .field("guarantee", &self.guarantee)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(format!("kafka sink: {e}"))
}

/// The producer's configuration of sink `spec`.
fn producer_config(spec: &KafkaSinkSpec) -> rdkafka::ClientConfig {
    let buffer = PRODUCER_BUFFER_KIB.to_string();
    client_config(
        &spec.bootstrap_servers,
        &spec.properties,
        &[
            ("enable.idempotence", "true"),
            ("partitioner", "murmur2_random"),
            ("queue.buffering.max.kbytes", &buffer),
        ],
    )
}

/// Makes sure the topic of sink `spec` exists: created if its spec asks
/// (`create-topic`), else an error naming it. A broker that does not
/// answer is no error here: the writers then fail and the job restarts.
pub fn prepare_topic(spec: &KafkaSinkSpec) -> Result<(), SinkError> {
    let config = producer_config(spec);
    match partitions(&config, &spec.topic) {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!("kafka sink: {e}");
            return Ok(());
        }
    }
    match &spec.create_topic {
        Some(how) => create_topic(&config, &spec.topic, how).map_err(SinkError::Failed),
        None => Err(SinkError::Failed(format!(
            "topic `{}` does not exist on {} (create it, or set create-topic: {{partitions: N}})",
            spec.topic, spec.bootstrap_servers
        ))),
    }
}

impl KafkaSink {
    /// A writer of sink `spec` ([`prepare_topic`] made sure of its topic).
    pub fn open(spec: &KafkaSinkSpec) -> Result<Self, SinkError> {
        let config = producer_config(spec);
        let deliveries = Deliveries::default();
        let producer = config
            .create_with_context(deliveries.clone())
            .map_err(err)?;
        Ok(KafkaSink {
            producer,
            deliveries,
            topic: spec.topic.clone(),
            guarantee: spec.delivery_guarantee,
        })
    }

    /// The first delivery failure since the last look, as an error.
    fn check(&self) -> Result<(), SinkError> {
        let mut failed = self
            .deliveries
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match failed.take() {
            Some(e) => Err(err(format!("a record was not delivered: {e}"))),
            None => Ok(()),
        }
    }

    /// Waits until the broker acknowledged every record sent.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| {
            err(format!(
                "the broker did not acknowledge every record within {} s: {e}",
                FLUSH_TIMEOUT.as_secs()
            ))
        })?;
        self.check()
    }
}

impl SinkWriter for KafkaSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        for e in BatchReader::new(&batch.data) {
            let e = e.map_err(|e| SinkError::Failed(e.to_string()))?;
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(e.value);
            if let Some(k) = e.key {
                record = record.key(k);
            }
            if let Some(ts) = e.timestamp {
                record = record.timestamp(ts);
            }
            let full_since = std::time::Instant::now();
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The client's queue is full: wait for it to drain,
                    // as long as a flush may take.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        self.check()?;
                        if full_since.elapsed() > FLUSH_TIMEOUT {
                            return Err(err(format!(
                                "the broker took no record for {} s",
                                FLUSH_TIMEOUT.as_secs()
                            )));
                        }
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(err(e)),
                }
            }
        }
        self.check()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }

    fn pre_commit(&mut self, _id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        match self.guarantee {
            DeliveryGuarantee::None => self.check()?,
            _ => self.flush()?,
        }
        Ok(Vec::new())
    }
}
