//! What the Kafka sink's writers share: the producer's configuration, the
//! delivery reports, sending a batch with the client's queue full, and
//! waiting for the broker's acknowledgements.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use weir_wire::{BatchReader, EnvelopeRef};

use crate::kafka::{client_config, create_topic, partitions};
use crate::sink::SinkError;
use crate::spec::{KafkaSinkSpec, PRODUCER_BUFFER_KIB};

/// How long a flush, a transaction's commit or a full send queue may
/// wait for the broker: `max.block.ms` (see [`super::max_block`]), checked
/// before the job starts, so a value that does not parse here takes the
/// default.
pub(super) fn block_timeout(spec: &KafkaSinkSpec) -> Duration {
    super::max_block(spec).unwrap_or(Duration::from_secs(60))
}

/// Keeps the first delivery failure the producer reports.
#[derive(Debug, Default, Clone)]
pub(super) struct Deliveries {
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

impl Deliveries {
    /// The first delivery failure since the last look, as an error.
    pub(super) fn check(&self) -> Result<(), SinkError> {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        match failed.take() {
            Some(e) => Err(err(format!("a record was not delivered: {e}"))),
            None => Ok(()),
        }
    }
}

/// A producer with its delivery reports.
pub(super) struct Sender {
    pub(super) producer: ThreadedProducer<Deliveries>,
    deliveries: Deliveries,
    /// How long a call may wait for the broker ([`block_timeout`]).
    pub(super) block: Duration,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

/// The headers of `envelope` as the client takes them.
fn owned_headers(envelope: &EnvelopeRef<'_>) -> OwnedHeaders {
    envelope.headers.iter().fold(
        OwnedHeaders::new_with_capacity(envelope.headers.len()),
        |h, x| {
            h.insert(Header {
                key: x.name,
                value: x.value,
            })
        },
    )
}

/// A Kafka sink error, prefixed with where it comes from.
pub(super) fn err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Failed(format!("kafka sink: {e}"))
}

/// The producer's configuration of sink `spec`, with `extra` settings
/// (which the spec's own properties override).
pub(super) fn producer_config(
    spec: &KafkaSinkSpec,
    extra: &[(&str, &str)],
) -> rdkafka::ClientConfig {
    let buffer = PRODUCER_BUFFER_KIB.to_string();
    let mut settings = vec![
        ("enable.idempotence", "true"),
        ("partitioner", "murmur2_random"),
        ("queue.buffering.max.kbytes", buffer.as_str()),
    ];
    settings.extend_from_slice(extra);
    sink_client_config(spec, &settings)
}

/// A client configuration of sink `spec`'s broker and properties, with
/// `extra` settings, for its producers and its marker consumers: the
/// properties without `max.block.ms`, which Weir reads itself.
pub(super) fn sink_client_config(
    spec: &KafkaSinkSpec,
    extra: &[(&str, &str)],
) -> rdkafka::ClientConfig {
    let mut config = client_config(&spec.bootstrap_servers, &spec.properties, extra);
    config.remove(super::MAX_BLOCK_MS);
    config
}

/// Makes sure the topic of sink `spec` exists: created if its spec asks
/// (`create-topic`), else an error naming it. A broker that does not
/// answer is no error here: the writers then fail and the job restarts.
pub fn prepare_topic(spec: &KafkaSinkSpec) -> Result<(), SinkError> {
    let config = producer_config(spec, &[]);
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

impl Sender {
    /// A producer of `config` whose calls wait at most `block`.
    pub(super) fn create(
        config: &rdkafka::ClientConfig,
        block: Duration,
    ) -> Result<Self, SinkError> {
        let deliveries = Deliveries::default();
        let producer = config
            .create_with_context(deliveries.clone())
            .map_err(err)?;
        Ok(Sender {
            producer,
            deliveries,
            block,
        })
    }

    /// The first delivery failure since the last look, as an error.
    pub(super) fn check(&self) -> Result<(), SinkError> {
        self.deliveries.check()
    }

    /// Sends every element of `batch` to the topic of sink `spec`: its
    /// key, its value and its event time as the record's timestamp (with
    /// `headers: true`, the value is a record envelope of headers and
    /// value).
    pub(super) fn send(&self, spec: &KafkaSinkSpec, data: &[u8]) -> Result<(), SinkError> {
        for e in BatchReader::new(data) {
            let e = e.map_err(|e| SinkError::Failed(e.to_string()))?;
            let (value, headers) = match spec.headers {
                true => {
                    let envelope = EnvelopeRef::read(e.value).map_err(|w| {
                        err(format!(
                            "topic `{}`: headers: true takes element values that are record envelopes (the Kafka source's with headers: true, or weir_sdk::kafka::write_envelope), and this one is not: {w}",
                            spec.topic
                        ))
                    })?;
                    (envelope.value, Some(owned_headers(&envelope)))
                }
                false => (Some(e.value), None),
            };
            let mut record = BaseRecord::<[u8], [u8]>::to(&spec.topic);
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(k) = e.key {
                record = record.key(k);
            }
            if let Some(ts) = e.timestamp {
                record = record.timestamp(ts);
            }
            if let Some(h) = headers {
                record = record.headers(h);
            }
            let full_since = std::time::Instant::now();
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    // The client's queue is full: wait for it to drain,
                    // as long as a flush may take.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        self.check()?;
                        if full_since.elapsed() > self.block {
                            return Err(err(format!(
                                "the broker took no record for {} ms (max.block.ms)",
                                self.block.as_millis()
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

    /// Waits until the broker acknowledged every record sent.
    pub(super) fn flush(&self) -> Result<(), SinkError> {
        self.producer.flush(self.block).map_err(|e| {
            err(format!(
                "the broker did not acknowledge every record within {} ms (max.block.ms): {e}",
                self.block.as_millis()
            ))
        })?;
        self.check()
    }
}
