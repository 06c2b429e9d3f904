//! CI smoke test: a real system (account service, order service, gateway as
//! separate `hts` processes) under a few seconds of tiny load from the real
//! `hts-bench` binary, in both modes, plus the idle-connections subcommand.

use std::path::{Path, PathBuf};
use std::process::Command;

use hts_bench::compare::procs::{spawn_announced, Service};

const SECRET: &str = "bench-smoke-test-secret";

/// The `hts` binary next to this test's target directory, built if missing.
fn hts_binary() -> PathBuf {
    // current_exe = <target>/<profile>/deps/smoke-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir");
    let hts = profile_dir.join("hts");
    if !hts.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "hts-cli"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p hts-cli failed");
    }
    assert!(hts.exists(), "{} not found", hts.display());
    hts
}

struct System {
    dir: tempfile::TempDir,
    _account: Service,
    orders: Service,
    gateway: Service,
}

fn start() -> System {
    let dir = tempfile::tempdir().unwrap();
    let hts = hts_binary();
    let env = [("HTS_JWT_SECRET", SECRET), ("RUST_LOG", "warn")];
    let acc_store = format!("sqlite:{}", dir.path().join("accounts.db").display());
    let account = spawn_announced(
        "account-service",
        &hts,
        &[
            "account-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &acc_store,
            "--seed-demo",
        ],
        &env,
        dir.path(),
    )
    .unwrap();
    let ord_store = format!("sqlite:{}", dir.path().join("orders.db").display());
    let account_url = account.url();
    let orders = spawn_announced(
        "order-service",
        &hts,
        &[
            "order-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &ord_store,
            "--account-service",
            &account_url,
        ],
        &env,
        dir.path(),
    )
    .unwrap();
    let orders_url = orders.url();
    // Debug builds are slow: give requests a generous deadline.
    let gateway = spawn_announced(
        "gateway",
        &hts,
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--backend",
            &orders_url,
            "--request-timeout-ms",
            "5000",
        ],
        &env,
        dir.path(),
    )
    .unwrap();
    System {
        dir,
        _account: account,
        orders,
        gateway,
    }
}

fn bench(args: &[&str], json: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hts-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .env("HTS_JWT_SECRET", SECRET)
        .output()
        .expect("run hts-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hts-bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(json).expect("json report");
    serde_json::from_str(&text).expect("valid json")
}

fn assert_sane_run(r: &serde_json::Value) {
    let num = |k: &str| {
        r[k].as_f64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"))
    };
    assert!(num("achieved_rate") > 0.0, "{r}");
    assert_eq!(num("errors"), 0.0, "{r}");
    assert_eq!(num("timeouts"), 0.0, "{r}");
    assert!(num("sent") > 0.0, "{r}");
    assert_eq!(num("sent"), num("responses"), "{r}");
    assert_eq!(r["codes"]["OK"].as_f64(), Some(num("responses")), "{r}");
    let l = &r["latency_from_due_us"];
    let p = |k: &str| {
        l[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {l}"))
    };
    assert!(
        p("p50") > 0 && p("p50") <= p("p99") && p("p99") <= p("max"),
        "{l}"
    );
    assert!(p("max") < 60_000_000, "{l}");
    assert!(
        r["latency_from_send_us"]["p50"].as_u64().unwrap() <= p("p99"),
        "{r}"
    );
}

#[test]
fn smoke_gateway_direct_and_idle_connections() {
    let sys = start();
    let gw = sys.gateway.addr.to_string();
    let gw_pid = sys.gateway.pid().to_string();
    let common = [
        "--rate",
        "20",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--connections",
        "2",
        "--accounts",
        "2",
        "--no-progress",
    ];

    let json = sys.dir.path().join("gateway.json");
    let mut args = vec!["--addr", gw.as_str(), "--pid", gw_pid.as_str()];
    args.extend(common);
    let r = bench(&args, &json);
    assert_sane_run(&r);
    assert_eq!(r["mode"], "gateway");
    let procs = r["processes"].as_array().expect("processes");
    assert_eq!(procs.len(), 1, "{r}");
    assert!(procs[0]["peak_rss_mib"].as_f64().unwrap() > 0.0, "{r}");

    let json = sys.dir.path().join("direct.json");
    let url = sys.orders.url();
    let mut args = vec!["--mode", "direct", "--addr", url.as_str()];
    args.extend(common);
    let r = bench(&args, &json);
    assert_sane_run(&r);
    assert_eq!(r["mode"], "direct");

    let json = sys.dir.path().join("idle.json");
    let r = bench(
        &[
            "connections",
            "50",
            "--addr",
            &gw,
            "--pid",
            &gw_pid,
            "--hold",
            "500ms",
        ],
        &json,
    );
    assert_eq!(r["opened"], 50, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert!(r["rss_after_mib"].as_f64().unwrap() > 0.0, "{r}");
}
