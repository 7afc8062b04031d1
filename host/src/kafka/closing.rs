//! [`DetachedConsumer`], a Kafka consumer of a group whose drop never
//! waits.
//!
//! librdkafka closes a consumer that has a `group.id` before destroying
//! it, and the `rdkafka` crate's drop polls until that close is done: with
//! the broker gone (or a proxy that accepts and drops connections), that
//! is without end, and a task ending (to restart the job) would hang in
//! it. So the close runs on a thread of its own, which ends when the
//! broker answers again or the process exits.

use std::ops::Deref;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};

/// A consumer whose close, on drop, runs on a thread of its own.
pub struct DetachedConsumer<C: ConsumerContext + 'static> {
    /// Taken only by the drop.
    consumer: Option<BaseConsumer<C>>,
}

impl<C: ConsumerContext + 'static> DetachedConsumer<C> {
    /// Wraps `consumer`.
    pub fn new(consumer: BaseConsumer<C>) -> Self {
        DetachedConsumer {
            consumer: Some(consumer),
        }
    }
}

impl<C: ConsumerContext + 'static> Deref for DetachedConsumer<C> {
    type Target = BaseConsumer<C>;

    fn deref(&self) -> &BaseConsumer<C> {
        self.consumer
            .as_ref()
            .expect("the consumer is taken only when it is dropped")
    }
}

impl<C: ConsumerContext + 'static> Drop for DetachedConsumer<C> {
    fn drop(&mut self) {
        let Some(consumer) = self.consumer.take() else {
            return;
        };
        let closing = std::thread::Builder::new()
            .name("weir-kafka-close".into())
            .spawn(move || drop(consumer));
        if let Err(e) = closing {
            // The consumer went down with the closure: it was closed here.
            tracing::warn!("kafka: closed a consumer on the task's thread: {e}");
        }
    }
}
