//! Harness of the resilience tests: real `hts` processes on loopback, order
//! services with fault injection driven by a JSON file each, a gateway
//! driven by a TOML config file (SIGHUP reloads it) whose per-backend
//! snapshot is read with SIGUSR1, and helpers to load the system and read
//! the stores.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hts_client::Client;
use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, Side};

#[path = "../support/mod.rs"]
mod process;

/// The JWT secret of every test cluster.
pub use process::SECRET;

/// A running `hts` process, killed (SIGKILL) when dropped.
pub use process::Proc as Service;

/// Account service, order services with fault files, gateway with a config file.
pub struct Cluster {
    /// Stores, fault files and the gateway config.
    pub dir: tempfile::TempDir,
    /// The account service.
    pub account: Service,
    /// Order services; `None` once killed.
    pub orders: Vec<Option<Service>>,
    /// The gateway.
    pub gateway: Service,
}

impl Cluster {
    /// Starts `faults.len()` order services (fault JSON each, `""` = none)
    /// and a gateway over all of them with `gateway_args`.
    pub fn start(faults: &[&str], gateway_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let account = Service::spawn(&strings(&[
            "account-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &format!("sqlite:{}", dir.path().join("accounts.db").display()),
            "--seed-demo",
        ]));
        let mut orders = Vec::new();
        for (i, f) in faults.iter().enumerate() {
            write_fault(dir.path(), i, f);
            orders.push(Some(spawn_order_service(dir.path(), &account.url(), i)));
        }
        let urls: Vec<String> = orders.iter().flatten().map(Service::url).collect();
        write_gateway_config(dir.path(), &urls);
        let mut args = strings(&[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
            &dir.path().join(CONFIG).display().to_string(),
        ]);
        args.extend(gateway_args.iter().map(|s| s.to_string()));
        let gateway = Service::spawn(&args);
        Cluster {
            dir,
            account,
            orders,
            gateway,
        }
    }

    /// Starts one more order service (not yet known to the gateway); returns its index.
    pub fn add_order_service(&mut self, fault: &str) -> usize {
        let i = self.orders.len();
        write_fault(self.dir.path(), i, fault);
        let svc = spawn_order_service(self.dir.path(), &self.account.url(), i);
        self.orders.push(Some(svc));
        i
    }

    /// Replaces order service `i`'s faults (JSON; `""` = none). The service
    /// polls the file every 100 ms.
    pub fn set_fault(&self, i: usize, json: &str) {
        write_fault(self.dir.path(), i, json);
    }

    /// Waits until a fault change has surely been picked up.
    pub async fn fault_applied(&self) {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    /// Rewrites the config with `backends` and sends SIGHUP; returns once
    /// the gateway confirmed the reload.
    pub fn reload_backends(&mut self, backends: &[String]) {
        write_gateway_config(self.dir.path(), backends);
        self.gateway.signal("HUP");
        self.gateway
            .wait_for_line("hts gateway reloaded", Duration::from_secs(10));
    }

    /// URL of order service `i`.
    pub fn url(&self, i: usize) -> String {
        self.orders[i].as_ref().expect("service alive").url()
    }

    /// URLs of the order services still running.
    pub fn live_urls(&self) -> Vec<String> {
        self.orders.iter().flatten().map(Service::url).collect()
    }

    /// SIGKILLs order service `i`.
    pub fn kill_order_service(&mut self, i: usize) {
        if let Some(s) = self.orders[i].take() {
            s.kill();
        }
    }

    /// Path of the shared order store.
    pub fn order_db(&self) -> PathBuf {
        self.dir.path().join("orders.db")
    }

    /// Path of the account store.
    pub fn account_db(&self) -> PathBuf {
        self.dir.path().join("accounts.db")
    }

    /// The gateway's snapshot (SIGUSR1 → `hts gateway stats {json}`).
    pub fn stats(&mut self) -> serde_json::Value {
        stats(&mut self.gateway)
    }

    /// A logged-in client for `account`.
    pub async fn client(&self, account: &str) -> Client {
        login(self.gateway.addr, account).await
    }

    /// (available, reserved) CASH of `account` from the account service.
    pub async fn cash(&self, account: &str) -> (i64, i64) {
        let accounts = hts_account_client::AccountClient::connect_lazy(&self.account.url())
            .expect("account client");
        let r = accounts.get_account(account).await.expect("get_account");
        r.balances
            .iter()
            .find(|b| b.asset == "CASH")
            .map(|b| (b.available, b.reserved))
            .unwrap_or((0, 0))
    }
}

/// Name of the gateway config file in the cluster directory.
const CONFIG: &str = "gateway.toml";

fn write_atomically(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn write_fault(dir: &Path, i: usize, json: &str) {
    let json = if json.is_empty() { "{}" } else { json };
    write_atomically(dir, &format!("fault-{i}.json"), json);
}

fn write_gateway_config(dir: &Path, backends: &[String]) {
    let list: Vec<String> = backends.iter().map(|u| format!("{u:?}")).collect();
    write_atomically(dir, CONFIG, &format!("backends = [{}]\n", list.join(", ")));
}

fn spawn_order_service(dir: &Path, account_url: &str, i: usize) -> Service {
    Service::spawn(&strings(&[
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", dir.join("orders.db").display()),
        "--account-service",
        account_url,
        "--fault-file",
        &dir.join(format!("fault-{i}.json")).display().to_string(),
    ]))
}

/// A gateway's snapshot (SIGUSR1 → `hts gateway stats {json}`).
pub fn stats(gateway: &mut Service) -> serde_json::Value {
    gateway.signal("USR1");
    let line = gateway.wait_for_line("hts gateway stats ", Duration::from_secs(10));
    let json = line.split_once("hts gateway stats ").unwrap().1;
    serde_json::from_str(json).expect("stats json")
}

/// `&str`s to `String`s.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A token for `account`.
pub fn token(account: &str) -> String {
    hts_gateway::auth::mint_token(SECRET.as_bytes(), account, Duration::from_secs(600)).unwrap()
}

/// Connects and logs in.
pub async fn login(addr: SocketAddr, account: &str) -> Client {
    let client = Client::connect(addr).await.expect("connect");
    let r = client.login(account, &token(account)).await.expect("login");
    assert_eq!(r.code, Code::Ok as i32, "login failed: {}", r.message);
    client
}

/// A BUY LIMIT order of 1 × 100.
pub fn order(request_id: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price: 100,
        quantity: 1,
    }
}

/// Outcome of one client request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request id sent.
    pub request_id: String,
    /// Response code (or `Code::Unspecified` for a client error).
    pub code: i32,
    /// Client-observed latency.
    pub latency: Duration,
    /// The response message.
    pub message: String,
}

/// Runs `workers` tasks, each placing orders `{prefix}-{worker}-{n}`
/// back to back, until `stop` says so; every answer is returned.
pub async fn place_stream(
    client: &Client,
    prefix: &str,
    workers: usize,
    stop: impl Fn(usize) -> bool + Clone + Send + Sync + 'static,
) -> Vec<Answer> {
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let client = client.clone();
            let stop = stop.clone();
            let prefix = prefix.to_owned();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut n = 0;
                while !stop(n) {
                    let request_id = format!("{prefix}-{w}-{n}");
                    out.push(place_once(&client, &request_id).await);
                    n += 1;
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    all
}

/// Places one order and times it.
pub async fn place_once(client: &Client, request_id: &str) -> Answer {
    let started = Instant::now();
    let r = client.place(order(request_id)).await;
    let latency = started.elapsed();
    match r {
        Ok(resp) => Answer {
            request_id: request_id.to_owned(),
            code: resp.code,
            latency,
            message: resp.message,
        },
        Err(e) => Answer {
            request_id: request_id.to_owned(),
            code: Code::Unspecified as i32,
            latency,
            message: e.to_string(),
        },
    }
}

/// Answers per code name.
pub fn by_code(answers: &[Answer]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for a in answers {
        let name = Code::try_from(a.code)
            .map(|c| c.as_str_name().to_owned())
            .unwrap_or_else(|_| a.code.to_string());
        *m.entry(name).or_default() += 1;
    }
    m
}

/// The `q` quantile of the answers' latencies.
pub fn quantile(answers: &[Answer], q: f64) -> Duration {
    let mut l: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    l.sort_unstable();
    if l.is_empty() {
        return Duration::ZERO;
    }
    let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
    l[i]
}

/// Order rows per request id of `account` (a request id stored twice shows up as 2).
pub fn orders_per_request_id(db: &Path, account: &str) -> HashMap<String, i64> {
    let conn = rusqlite::Connection::open(db).expect("open order db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT request_id, COUNT(*) FROM orders WHERE account_id = ?1 GROUP BY request_id",
        )
        .unwrap();
    let rows = stmt
        .query_map([account], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

/// Reservations held for `account` in the account store.
pub fn reservations(db: &Path, account: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open account db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM reservations WHERE account_id = ?1",
        [account],
        |r| r.get(0),
    )
    .expect("count reservations")
}

/// Per-backend entries of a snapshot, keyed by URL.
pub fn backends_by_url(stats: &serde_json::Value) -> HashMap<String, serde_json::Value> {
    stats["router"]["backends"]
        .as_array()
        .expect("backends array")
        .iter()
        .map(|b| (b["url"].as_str().unwrap().to_owned(), b.clone()))
        .collect()
}

/// A numeric field of a JSON value.
pub fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Checks the stores: every request id of `account` in `expected` is
/// stored exactly once, nothing else is stored, and the account service
/// holds exactly one reservation per order.
pub fn assert_exactly_once(cluster: &Cluster, account: &str, expected: &[String]) {
    let stored = orders_per_request_id(&cluster.order_db(), account);
    let doubled: Vec<_> = stored.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        doubled.is_empty(),
        "request ids stored more than once: {doubled:?}"
    );
    for id in expected {
        assert!(stored.contains_key(id), "OK order {id} is not in the store");
    }
    assert_eq!(stored.len(), expected.len(), "stored orders vs OK answers");
    assert_eq!(
        reservations(&cluster.account_db(), account),
        expected.len() as i64,
        "one reservation per order"
    );
}

/// A seeded account service on SQLite in `dir`, listening on `listen`
/// (`127.0.0.1:0`, or a fixed address to come back on after a kill).
pub fn account_service(dir: &std::path::Path, listen: &str) -> Service {
    Service::spawn(&strings(&[
        "account-service",
        "--init",
        "--listen",
        listen,
        "--store",
        &format!("sqlite:{}", dir.join("accounts.db").display()),
        "--seed-demo",
    ]))
}
