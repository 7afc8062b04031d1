//! What Weir's Kafka source and sink share: the client configuration
//! built from a spec's `kafka` block, a topic's partitions, and creating a
//! topic. Through the `rdkafka` crate (librdkafka, built from its bundled
//! sources).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::spec::{ConfigValue, CreateTopic};

mod closing;

pub use closing::DetachedConsumer;

/// How long a metadata request or topic creation may take.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The client configuration of `bootstrap` with the user's `properties`
/// over Weir's defaults (`extra`, which the caller needs for its role).
pub fn client_config(
    bootstrap: &str,
    properties: &BTreeMap<String, ConfigValue>,
    extra: &[(&str, &str)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    // librdkafka's own logging goes nowhere; errors reach Weir as results.
    c.set("log_level", "3");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    for (k, v) in properties {
        c.set(k, v.to_string());
    }
    c
}

/// A consumer for metadata requests only (it never asks the broker to
/// create a topic).
fn metadata_client(config: &ClientConfig) -> Result<BaseConsumer, String> {
    let mut c = config.clone();
    c.set("allow.auto.create.topics", "false");
    c.remove("group.id");
    c.remove("isolation.level");
    c.remove("enable.partition.eof");
    c.create()
        .map_err(|e| format!("cannot create a Kafka client: {e}"))
}

/// The topics of the cluster whose name `pattern` matches, sorted,
/// without internal ones (`__`-prefixed).
pub fn matching_topics(
    config: &ClientConfig,
    pattern: &regex::Regex,
) -> Result<Vec<String>, String> {
    let client = metadata_client(config)?;
    let metadata = client
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| format!("cannot list the cluster's topics: {e}"))?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|n| !n.starts_with("__") && pattern.is_match(n))
        .map(str::to_owned)
        .collect();
    names.sort();
    Ok(names)
}

/// The partitions of `topic`, in order; `Ok(None)` if the topic does not
/// exist.
pub fn partitions(config: &ClientConfig, topic: &str) -> Result<Option<Vec<i32>>, String> {
    let client = metadata_client(config)?;
    let metadata = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| format!("cannot read the metadata of topic `{topic}`: {e}"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match t.error() {
        Some(e) if RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(e) => Err(format!("topic `{topic}`: {}", RDKafkaErrorCode::from(e))),
        None if t.partitions().is_empty() => Ok(None),
        None => {
            let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            ids.sort_unstable();
            Ok(Some(ids))
        }
    }
}

/// Creates `topic` as `how` asks (an existing topic is no error).
pub fn create_topic(config: &ClientConfig, topic: &str, how: &CreateTopic) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let partitions = i32::try_from(how.partitions).unwrap_or(i32::MAX);
    let replication = i32::try_from(how.replication_factor.unwrap_or(1)).unwrap_or(i32::MAX);
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics([&new], &options))
        .map_err(|e| format!("cannot create topic `{topic}`: {e}"))?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, e)) => return Err(format!("cannot create topic `{name}`: {e}")),
        }
    }
    Ok(())
}
