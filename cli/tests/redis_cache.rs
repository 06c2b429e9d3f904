//! The optional Redis order cache, against a real `redis-server` started on a
//! free port: queries fill and use it, Redis frozen or gone costs nothing but
//! a database read, and a cancel made while Redis is unreachable is never
//! hidden by the stale entry Redis still holds when it comes back.

mod support;

use hts_proto::v1::{
    CancelOrderRequest, Code, OrderStatus, OrderType, PlaceOrderRequest, QueryOrderRequest, Side,
};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{login, Proc};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test.sh installs it)");
        let redis = Redis { child, port };
        for _ in 0..200 {
            if redis.cli(&["PING"]).as_deref() == Some("PONG") {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// How many GET commands Redis has served so far.
    fn get_calls(&self) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

/// A BUY of `quantity` 005930 at 100 for the session's account.
fn buy(request_id: &str, quantity: i64) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price: 100,
        quantity,
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A seeded account service on SQLite in `dir`.
fn account_service(dir: &std::path::Path) -> Proc {
    Proc::spawn(&[
        "account-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", dir.join("a.db").display()),
        "--seed-demo",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_cache_speeds_reads_and_never_outranks_the_database() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = account_service(dir.path());
    let redis_url = format!("redis://127.0.0.1:{}/0", redis.port);
    let orders = Proc::spawn(&[
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", dir.path().join("o.db").display()),
        "--account-service",
        &accounts.url(),
        "--redis-url",
        &redis_url,
        "--redis-ttl-secs",
        "600",
    ]);
    let gateway = Proc::spawn(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--backend",
        &orders.url(),
        "--request-timeout-ms",
        "5000",
    ]);
    let client = login(gateway.addr, "ACC-0011").await;
    let placed = client.place(buy("cache-1", 2)).await.unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{}", placed.message);
    let key = format!("hts:order:{}", placed.order_id);
    let second = client.place(buy("cache-2", 1)).await.unwrap();
    assert_eq!(second.code, Code::Ok as i32);
    let query = || {
        let client = client.clone();
        let order_id = placed.order_id.clone();
        async move {
            let r = client.query(QueryOrderRequest { order_id }).await.unwrap();
            assert_eq!(r.code, Code::Ok as i32, "{}", r.message);
            r.order.unwrap().status
        }
    };

    // A read fills the cache (the client connects in the background: allow it a moment).
    let mut cached = None;
    for _ in 0..100 {
        assert_eq!(query().await, OrderStatus::Accepted as i32);
        cached = redis.cli(&["GET", &key]).filter(|v| !v.is_empty());
        if cached.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cached = cached.expect("the order was cached after a query");
    assert!(cached.contains("\"status\":1"), "{cached}");

    // Another account still cannot read it, cache or not: to it the order
    // does not exist.
    let other = login(gateway.addr, "ACC-0012").await;
    let r = other
        .query(QueryOrderRequest {
            order_id: placed.order_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(r.code, Code::NotFound as i32);
    assert!(r.order.is_none());

    // Redis frozen: reads and the cancel go to the database; the cancel's
    // invalidation cannot reach Redis, which keeps its stale ACCEPTED entry.
    redis.signal("-STOP");
    assert_eq!(query().await, OrderStatus::Accepted as i32);
    let canceled = client
        .cancel(CancelOrderRequest {
            request_id: "cache-1-cancel".into(),
            order_id: placed.order_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(canceled.code, Code::Ok as i32, "{}", canceled.message);
    assert_eq!(query().await, OrderStatus::Canceled as i32);

    // Redis back. The delete may or may not have reached it (its bytes can
    // sit in the socket while Redis is frozen), so put the stale ACCEPTED
    // entry back, as a lost delete would leave it: the service must not serve it.
    redis.signal("-CONT");
    assert_eq!(
        redis.cli(&["SET", &key, &cached, "EX", "600"]).as_deref(),
        Some("OK")
    );
    // Wait until the service reads Redis again (GETs for the other order reach it).
    let before = redis.get_calls();
    let mut reading = false;
    for _ in 0..200 {
        let r = client
            .query(QueryOrderRequest {
                order_id: second.order_id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(r.code, Code::Ok as i32);
        if redis.get_calls() > before {
            reading = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reading, "the order service went back to reading Redis");
    for _ in 0..10 {
        assert_eq!(query().await, OrderStatus::Canceled as i32);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Redis gone altogether: still served, from the database.
    drop(redis);
    for _ in 0..5 {
        assert_eq!(query().await, OrderStatus::Canceled as i32);
    }
}

/// A gateway on `backend` sharing sessions through `redis_url`.
fn session_gateway(backend: &str, redis_url: &str) -> Proc {
    Proc::spawn(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--backend",
        backend,
        "--request-timeout-ms",
        "5000",
        "--redis-url",
        redis_url,
    ])
}

/// Waits until Redis holds the session (registration runs in the background).
async fn registered(redis: &Redis, session_id: &str) -> String {
    let key = format!("hts:session:{session_id}");
    for _ in 0..200 {
        if let Some(account) = redis.cli(&["GET", &key]).filter(|v| !v.is_empty()) {
            return account;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session {session_id} never reached redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_on_another_gateway_and_never_outlive_their_token() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let accounts = account_service(dir.path());
    let orders = Proc::spawn(&[
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &format!("sqlite:{}", dir.path().join("o.db").display()),
        "--account-service",
        &accounts.url(),
    ]);
    let redis_url = format!("redis://127.0.0.1:{}/0", redis.port);
    let first = session_gateway(&orders.url(), &redis_url);
    let second = session_gateway(&orders.url(), &redis_url);

    // A token login on the first gateway opens a session that lives as long
    // as the token.
    let a = hts_client::Client::connect(first.addr).await.unwrap();
    let token = hts_gateway::auth::mint_token(
        support::SECRET.as_bytes(),
        "ACC-0012",
        Duration::from_secs(3),
    )
    .unwrap();
    let opened = a.login("ACC-0012", &token).await.unwrap();
    assert_eq!(opened.code, Code::Ok as i32, "{}", opened.message);
    let value = registered(&redis, &opened.session_id).await;
    assert!(value.ends_with(":ACC-0012"), "{value}");
    let ttl: i64 = redis
        .cli(&["TTL", &format!("hts:session:{}", opened.session_id)])
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=3).contains(&ttl),
        "session ttl {ttl} s must end with the token"
    );

    // Resumed on the second gateway without a token: same account, orders flow.
    let b = hts_client::Client::connect(second.addr).await.unwrap();
    let resumed = b.resume("", &opened.session_id).await.unwrap();
    assert_eq!(resumed.code, Code::Ok as i32, "{}", resumed.message);
    assert_eq!(resumed.session_id, opened.session_id);
    let placed = b.place(buy("session-1", 1)).await.unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{}", placed.message);

    // The session cannot be claimed for another account, nor guessed.
    let c = hts_client::Client::connect(second.addr).await.unwrap();
    let other = c.resume("ACC-0013", &opened.session_id).await.unwrap();
    assert_eq!(
        other.code,
        Code::Unauthenticated as i32,
        "{}",
        other.message
    );
    let guessed = c
        .resume("", &uuid::Uuid::new_v4().to_string())
        .await
        .unwrap();
    assert_eq!(guessed.code, Code::Unauthenticated as i32);
    assert!(
        guessed.message.contains("unknown or expired session"),
        "{}",
        guessed.message
    );

    // Once the token has expired, so has the session.
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let d = hts_client::Client::connect(second.addr).await.unwrap();
    let late = d.resume("", &opened.session_id).await.unwrap();
    assert_eq!(late.code, Code::Unauthenticated as i32, "{}", late.message);

    // Redis gone: resumes are refused with a clear message, token logins
    // and orders still work (Redis is never the source of truth).
    let fresh = support::token("ACC-0012");
    let e = hts_client::Client::connect(first.addr).await.unwrap();
    let live = e.login("ACC-0012", &fresh).await.unwrap();
    registered(&redis, &live.session_id).await;
    drop(redis);
    let f = hts_client::Client::connect(second.addr).await.unwrap();
    let refused = f.resume("", &live.session_id).await.unwrap();
    assert_eq!(refused.code, Code::Unauthenticated as i32);
    assert!(
        refused.message.contains("session store unavailable"),
        "{}",
        refused.message
    );
    let relogin = f.login("ACC-0012", &fresh).await.unwrap();
    assert_eq!(relogin.code, Code::Ok as i32, "{}", relogin.message);
    let placed = f.place(buy("session-2", 1)).await.unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{}", placed.message);
}
