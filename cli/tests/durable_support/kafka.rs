//! A local Kafka-protocol broker (tansu, in-memory storage) and a real
//! Kafka consumer to read what was published.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use super::pg::free_port;

/// The `tansu` binary: on PATH or in ~/.cargo/bin.
pub fn tansu_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("tansu").exists() {
                return dir.join("tansu");
            }
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let bin = PathBuf::from(home).join(".cargo/bin/tansu");
    assert!(
        bin.exists(),
        "tansu broker not found: scripts/test.sh installs it \
         (cargo install tansu --locked --features dynostore)"
    );
    bin
}

/// A running broker; killed on drop.
pub struct Broker {
    child: Option<Child>,
    /// The address it listens on and advertises (127.0.0.1 unless started
    /// with [`Broker::start_on`]).
    pub host: String,
    /// Its port.
    pub port: u16,
}

impl Broker {
    /// Starts a broker on a free port of 127.0.0.1.
    pub fn start() -> Broker {
        Self::start_on("127.0.0.1")
    }

    /// Starts a broker listening on (and advertising) `host`, a local
    /// address, on a free port.
    pub fn start_on(host: &str) -> Broker {
        let mut broker = Broker {
            child: None,
            host: host.to_owned(),
            port: free_port(),
        };
        broker.start_again();
        broker
    }

    /// `HOST:PORT`.
    pub fn brokers(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// (Re)starts the broker on its port and waits until it listens.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let url = format!("tcp://{}:{}", self.host, self.port);
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect((self.host.as_str(), self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the broker (its in-memory data is lost).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the broker process (SIGSTOP): it keeps its data but answers
    /// nothing, like a broker that is down; [`Broker::resume`] undoes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("broker running").id();
        let status = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.stop();
    }
}

/// Creates topics through the admin API (tansu does not auto-create).
pub async fn create_topics(brokers: &str, topics: &[&str]) {
    hts_order_core::outbox::ensure_topics(brokers, topics, Duration::from_secs(20))
        .await
        .expect("create topics");
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Message key.
    pub key: String,
    /// Payload as JSON.
    pub payload: serde_json::Value,
    /// The `event_id` header.
    pub event_id: String,
    /// The `error` header (dead letters).
    pub error: Option<String>,
}

/// Reads `topic` from the beginning with a fresh consumer group until at
/// least `min` records arrived (or `timeout`), then keeps reading for
/// `settle` to catch extra (duplicate) records.
pub fn consume(
    brokers: &str,
    topic: &str,
    min: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Record> {
    consume_until(brokers, topic, timeout, settle, |records| {
        records.len() >= min
    })
}

/// Reads `topic` from the beginning with a fresh consumer group until
/// `done` says the records read so far are enough (or `timeout`), then
/// keeps reading for `settle` to catch extra (duplicate) records.
pub fn consume_until(
    brokers: &str,
    topic: &str,
    timeout: Duration,
    settle: Duration,
    mut done: impl FnMut(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if let Some(until) = settle_until {
            if now >= until {
                break;
            }
        } else if now >= deadline {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                let key = msg
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .unwrap_or_default();
                let payload = msg
                    .payload()
                    .map(|p| serde_json::from_slice(p).expect("JSON payload"))
                    .unwrap_or(serde_json::Value::Null);
                let header = |name: &str| {
                    msg.headers().and_then(|h| {
                        h.iter()
                            .find(|x| x.key == name)
                            .and_then(|x| x.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                };
                records.push(Record {
                    key,
                    payload,
                    event_id: header("event_id").unwrap_or_default(),
                    error: header("error"),
                });
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        if settle_until.is_none() && done(&records) {
            settle_until = Some(Instant::now() + settle);
        }
    }
    records
}
