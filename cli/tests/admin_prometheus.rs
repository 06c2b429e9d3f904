//! A real Prometheus server (the Debian `prometheus` binary that
//! scripts/test.sh installs) scrapes a running gateway's admin port; the
//! order-latency series arrives through its HTTP API.

mod admin_support;
mod resilience_support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use admin_support::{get, wait_for};
use hts_proto::v1::Code;
use resilience_support::{place_once, Cluster};

/// The Prometheus child process, killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_order_latency_series() {
    let mut c = Cluster::start(&[""], &["--request-timeout-ms", "5000"]);
    let line = c
        .gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30));
    let admin: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let client = c.client("ACC-0404").await;
    for n in 0..3 {
        let ans = place_once(&client, &format!("prom-{n}")).await;
        assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: hts-gateway\n    \
             static_configs:\n      - targets: [\"{admin}\"]\n"
        ),
    )
    .unwrap();
    let web = free_addr();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the prometheus binary (scripts/test.sh installs Debian's prometheus package)");
    let _prometheus = Prometheus(child);

    let query =
        "/api/v1/query?query=hts_order_latency_seconds_count%7Bmsg_type%3D%22PLACE_ORDER%22%7D";
    let result = wait_for("the series in Prometheus", Duration::from_secs(90), || {
        let r = std::panic::catch_unwind(|| get(web, query)).ok()?;
        if r.status != 200 {
            return None;
        }
        let v = r.json();
        let rows = v["data"]["result"].as_array()?.clone();
        (!rows.is_empty()).then_some(rows)
    });
    let row = &result[0];
    assert_eq!(row["metric"]["job"], "hts-gateway", "{row}");
    assert_eq!(row["metric"]["code"], "OK", "{row}");
    assert_eq!(row["metric"]["instance"], admin.to_string(), "{row}");
    let value: f64 = row["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(value, 3.0, "{row}");
}
