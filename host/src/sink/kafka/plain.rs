//! The Kafka sink with `delivery-guarantee: none` or `at-least-once`.
//! `at-least-once` waits on every barrier until the broker acknowledged
//! everything sent before it, so a checkpoint never completes over records
//! that could still be lost; `none` only waits at the end of input. The
//! producer is idempotent, so the client's own retries add no duplicates.

use super::producer::{Sender, block_timeout, producer_config};
use crate::channel::Batch;
use crate::sink::{SinkError, SinkWriter};
use crate::spec::{DeliveryGuarantee, KafkaSinkSpec};

/// One subtask's writer of a Kafka sink without transactions.
#[derive(Debug)]
pub struct KafkaSink {
    sender: Sender,
    spec: KafkaSinkSpec,
}

impl KafkaSink {
    /// A writer of sink `spec` (whose topic was made sure of at start).
    pub fn open(spec: &KafkaSinkSpec) -> Result<Self, SinkError> {
        Ok(KafkaSink {
            sender: Sender::create(&producer_config(spec, &[]), block_timeout(spec))?,
            spec: spec.clone(),
        })
    }
}

impl SinkWriter for KafkaSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.sender.send(&self.spec, &batch.data)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sender.flush()
    }

    fn pre_commit(&mut self, _id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        match self.spec.delivery_guarantee {
            DeliveryGuarantee::None => self.sender.check()?,
            _ => self.sender.flush()?,
        }
        Ok(Vec::new())
    }
}
