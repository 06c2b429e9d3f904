//! The gateway's admin HTTP surface against real processes: mutations need
//! the bearer token; drain, remove, add and breaker reset change routing as
//! a client sees it; readiness turns 503 (with Retry-After and the missing
//! piece named) when no backend is left and 200 when one returns; /metrics
//! carries the order-latency series after traffic; config is redacted.

mod admin_support;
mod resilience_support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_support::{backend, backends, get, http, wait_for};
use hts_proto::v1::Code;
use resilience_support::{place_once, Cluster, SECRET};

const TOKEN: &str = "admin-test-token-4711";

/// A cluster whose gateway has the admin token `TOKEN`; returns it and the admin address.
fn cluster(faults: &[&str], extra: &[&str]) -> (Cluster, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let token_arg = token_file.display().to_string();
    let mut args = vec![
        "--admin-token-file",
        token_arg.as_str(),
        "--request-timeout-ms",
        "5000",
    ];
    args.extend_from_slice(extra);
    let mut c = Cluster::start(faults, &args);
    let admin = admin_addr(&mut c);
    (c, admin, dir)
}

fn admin_addr(c: &mut Cluster) -> SocketAddr {
    let line = c
        .gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn id_of(admin: SocketAddr, url: &str) -> u64 {
    backend(admin, url).expect("backend listed")["id"]
        .as_u64()
        .unwrap()
}

fn calls(admin: SocketAddr, url: &str) -> u64 {
    backend(admin, url).map_or(0, |b| b["calls"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_a_valid_bearer_token() {
    let (c, admin, _dir) = cluster(&[""], &[]);
    let id = id_of(admin, &c.url(0));
    let drain = format!("/admin/backends/{id}/drain");
    for token in [None, Some("wrong-token"), Some("")] {
        let r = http(admin, "POST", &drain, token, None);
        assert_eq!(r.status, 401, "token {token:?}: {}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = http(
        admin,
        "DELETE",
        &format!("/admin/backends/{id}"),
        None,
        None,
    );
    assert_eq!(r.status, 401);
    let body = format!(r#"{{"url":"{}"}}"#, c.url(0));
    assert_eq!(
        http(admin, "POST", "/admin/backends", None, Some(&body)).status,
        401
    );
    assert_eq!(http(admin, "POST", "/admin/reload", None, None).status, 401);
    let reset = format!("/admin/backends/{id}/breaker/reset");
    assert_eq!(http(admin, "POST", &reset, None, None).status, 401);
    // Nothing changed: the backend is still active and serves.
    assert_eq!(backend(admin, &c.url(0)).unwrap()["state"], "active");
    let client = c.client("ACC-0401").await;
    assert_eq!(place_once(&client, "auth-1").await.code, Code::Ok as i32);

    // Reads are open; the config is redacted.
    assert_eq!(get(admin, "/healthz").status, 200);
    let cfg = get(admin, "/admin/config");
    assert_eq!(cfg.status, 200);
    assert!(!cfg.body.contains(TOKEN), "{}", cfg.body);
    assert!(!cfg.body.contains(SECRET), "{}", cfg.body);
    assert_eq!(cfg.json()["jwt_secret"], "[redacted]");
    assert_eq!(cfg.json()["backends"][0], c.url(0));
    // The right token works (an unknown id is a 404, not a 401).
    let r = http(
        admin,
        "POST",
        "/admin/backends/999/drain",
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_mutations_are_refused() {
    let mut c = Cluster::start(&[""], &["--request-timeout-ms", "5000"]);
    let admin = admin_addr(&mut c);
    let id = id_of(admin, &c.url(0));
    let r = http(
        admin,
        "POST",
        &format!("/admin/backends/{id}/drain"),
        Some("anything"),
        None,
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("no admin token"), "{}", r.body);
    assert_eq!(backend(admin, &c.url(0)).unwrap()["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_remove_add_and_reset_steer_routing_and_readiness() {
    let (c, admin, _dir) = cluster(
        &["", ""],
        &[
            "--hedging",
            "false",
            "--breaker-window",
            "10",
            "--breaker-delay-ms",
            "600000",
            "--breaker-max-delay-ms",
            "600000",
            "--outlier-consecutive-failures",
            "0",
        ],
    );
    let (a, b) = (c.url(0), c.url(1));
    let client = c.client("ACC-0402").await;
    let ready = get(admin, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["backends_ready"], 2);

    // Drain A: new requests all go to B; A leaves the table once idle.
    let a_id = id_of(admin, &a);
    let r = http(
        admin,
        "POST",
        &format!("/admin/backends/{a_id}/drain"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let a_before = calls(admin, &a);
    let b_before = calls(admin, &b);
    for n in 0..20 {
        let ans = place_once(&client, &format!("drain-{n}")).await;
        assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    }
    assert_eq!(calls(admin, &a), a_before, "drained backend got calls");
    assert!(calls(admin, &b) >= b_before + 20);
    wait_for("drained backend to leave", Duration::from_secs(30), || {
        backend(admin, &a).is_none().then_some(())
    });

    // Remove B: nothing is left; clients are refused and readiness says why.
    let b_id = id_of(admin, &b);
    let r = http(
        admin,
        "DELETE",
        &format!("/admin/backends/{b_id}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(backends(admin).is_empty());
    let ans = place_once(&client, "removed-1").await;
    assert_eq!(ans.code, Code::ServiceUnavailable as i32, "{ans:?}");
    let not_ready = get(admin, "/readyz");
    assert_eq!(not_ready.status, 503, "{}", not_ready.body);
    assert!(not_ready.header("retry-after").is_some());
    assert_eq!(not_ready.json()["missing"][0], "no_backend");

    // Add A back: it serves again and readiness returns.
    let body = format!(r#"{{"url":"{a}"}}"#);
    let r = http(admin, "POST", "/admin/backends", Some(TOKEN), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let new_id = r.json()["id"].as_u64().unwrap();
    assert_ne!(new_id, a_id);
    assert_eq!(get(admin, "/readyz").status, 200);
    let ans = place_once(&client, "added-1").await;
    assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    assert_eq!(calls(admin, &a), 1);
    // A duplicate add is refused.
    let dup = http(admin, "POST", "/admin/backends", Some(TOKEN), Some(&body));
    assert_eq!(dup.status, 409, "{}", dup.body);

    // A fails everything: its breaker opens and stays open (long delay).
    c.set_fault(0, r#"{"error_ratio": 1.0}"#);
    c.fault_applied().await;
    let mut n = 0;
    while backend(admin, &a).unwrap()["breaker"]["state"] != "open" {
        assert!(n < 200, "breaker never opened");
        let _ = place_once(&client, &format!("fail-{n}")).await;
        n += 1;
    }
    c.set_fault(0, "");
    c.fault_applied().await;
    let ans = place_once(&client, "open-1").await;
    assert_eq!(ans.code, Code::ServiceUnavailable as i32, "{ans:?}");
    let not_ready = get(admin, "/readyz");
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.json()["missing"][0], "all_breakers_open");
    assert_eq!(backend(admin, &a).unwrap()["status"], "ejected");

    // Reset the breaker: A serves at once.
    let r = http(
        admin,
        "POST",
        &format!("/admin/backends/{new_id}/breaker/reset"),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ans = place_once(&client, "reset-1").await;
    assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    assert_eq!(get(admin, "/readyz").status, 200);
    assert_eq!(backend(admin, &a).unwrap()["status"], "healthy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rereads_the_config_file() {
    let (c, admin, _dir) = cluster(&["", ""], &[]);
    let (a, b) = (c.url(0), c.url(1));
    let config = c.dir.path().join("gateway.toml");

    // An invalid file is refused and nothing changes.
    std::fs::write(&config, "backends = [\"not a url\"]\n").unwrap();
    let r = http(admin, "POST", "/admin/reload", Some(TOKEN), None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(backends(admin).len(), 2);

    // Only B listed: A is drained away, the effective config shows B only.
    std::fs::write(&config, format!("backends = [{b:?}]\n")).unwrap();
    let r = http(admin, "POST", "/admin/reload", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("A to leave", Duration::from_secs(30), || {
        backend(admin, &a).is_none().then_some(())
    });
    assert_eq!(
        get(admin, "/admin/config").json()["backends"],
        serde_json::json!([b])
    );
    let client = c.client("ACC-0405").await;
    let before = calls(admin, &b);
    let ans = place_once(&client, "reload-1").await;
    assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    assert_eq!(calls(admin, &b), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reports_the_settings_in_force_and_the_bound_address() {
    let (c, admin, _dir) = cluster(&[""], &["--max-body-len", "4096"]);
    let cfg = get(admin, "/admin/config").json();
    // What the gateway really listens on (it was asked for port 0), beside
    // what it was configured with: the one default, not a second one.
    assert_eq!(cfg["local_addr"], c.gateway.addr.to_string(), "{cfg}");
    assert_eq!(cfg["listen"], "127.0.0.1:0", "{cfg}");
    assert_eq!(cfg["admin_listen"], "127.0.0.1:0", "{cfg}");
    // Flags and defaults as in force; every key has its unit in its name.
    assert_eq!(cfg["max_body_len"], 4096, "{cfg}");
    assert_eq!(cfg["request_timeout_ms"], 5000, "{cfg}");
    assert_eq!(cfg["idle_timeout_secs"], 300, "{cfg}");
    assert_eq!(cfg["resilience"]["breaker_window"], 50, "{cfg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_stays_drained_across_a_reload_of_an_unchanged_file() {
    let (c, admin, _dir) = cluster(&["", ""], &[]);
    let (a, b) = (c.url(0), c.url(1));
    let r = http(
        admin,
        "POST",
        &format!("/admin/backends/{}/drain", id_of(admin, &a)),
        Some(TOKEN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("A to leave", Duration::from_secs(30), || {
        backend(admin, &a).is_none().then_some(())
    });
    // The file still lists A and B: a reload changes nothing.
    let r = http(admin, "POST", "/admin/reload", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        backend(admin, &a).is_none(),
        "A came back: {:?}",
        backends(admin)
    );
    assert_eq!(
        get(admin, "/admin/config").json()["backends"],
        serde_json::json!([b])
    );
    let client = c.client("ACC-0406").await;
    let before = calls(admin, &b);
    let ans = place_once(&client, "drained-1").await;
    assert_eq!(ans.code, Code::Ok as i32, "{ans:?}");
    assert_eq!(calls(admin, &b), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_changes_a_restart_only_key_is_refused_whole() {
    let (c, admin, _dir) = cluster(&["", ""], &[]);
    let (a, b) = (c.url(0), c.url(1));
    let config = c.dir.path().join("gateway.toml");
    // The file drops A (reloadable) and changes max_connections (not).
    std::fs::write(
        &config,
        format!("backends = [{b:?}]\nmax_connections = 7\n[resilience]\nmax_retries = 0\n"),
    )
    .unwrap();
    let r = http(admin, "POST", "/admin/reload", Some(TOKEN), None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("max_connections"), "{}", r.body);
    assert!(r.body.contains("restart"), "{}", r.body);
    // Nothing was applied: A still serves, the policies are unchanged.
    assert_eq!(backend(admin, &a).unwrap()["state"], "active");
    let cfg = get(admin, "/admin/config").json();
    assert_eq!(cfg["max_connections"], 20000, "{cfg}");
    assert_eq!(cfg["resilience"]["max_retries"], 1, "{cfg}");
    // Without the restart-only change the same reload is applied.
    std::fs::write(
        &config,
        format!("backends = [{b:?}]\n[resilience]\nmax_retries = 0\n"),
    )
    .unwrap();
    let r = http(admin, "POST", "/admin/reload", Some(TOKEN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        get(admin, "/admin/config").json()["resilience"]["max_retries"],
        0
    );
    wait_for("A to leave", Duration::from_secs(30), || {
        backend(admin, &a).is_none().then_some(())
    });
}
