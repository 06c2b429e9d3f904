//! The router's composition over in-memory backends under paused time: no
//! sockets, no real sleeping, the same policies as production.

use std::sync::Arc;
use std::time::Duration;

use hts_proto::v1::{Code, PlaceOrderRequest, QueryOrderRequest};
use tokio::time::Instant as Deadline;

use super::*;
use crate::resilience::hedge::MIN_HEDGE_SAMPLES;
use crate::resilience::latency::REFRESH;
use crate::upstream::fake::{FakeConnector, Mode};
use crate::upstream::{BackendReply, BackendRequest};

struct Fixture {
    router: Arc<Router>,
    fakes: Arc<FakeConnector>,
    urls: Vec<String>,
}

impl Fixture {
    fn calls(&self, i: usize) -> u64 {
        self.fakes.get(&self.urls[i]).calls()
    }

    fn total(&self) -> u64 {
        self.fakes.total_calls()
    }
}

fn router(modes: &[Mode], cfg: ResilienceConfig) -> Fixture {
    let (fakes, urls) = FakeConnector::with(modes);
    let set = BackendSet::new(&urls, fakes.clone(), cfg.backend()).unwrap();
    Fixture {
        router: Arc::new(Router::new(set, cfg, Duration::from_secs(2))),
        fakes,
        urls,
    }
}

fn place(id: &str) -> BackendRequest {
    BackendRequest::Place(PlaceOrderRequest {
        request_id: id.into(),
        ..Default::default()
    })
}

fn query() -> BackendRequest {
    BackendRequest::Query(QueryOrderRequest::default())
}

fn no_hedging() -> ResilienceConfig {
    ResilienceConfig {
        hedging: false,
        ..ResilienceConfig::default()
    }
}

fn ms(n: u64) -> crate::units::Millis {
    crate::units::Millis(Duration::from_millis(n))
}

async fn call(r: &Router, req: BackendRequest, within: Duration) -> BackendReply {
    let account: Arc<str> = Arc::from("ACC");
    r.call(&account, req, 1, Deadline::now() + within).await
}

/// Gives the pool a measured p95 of 1 ms, so hedging may start.
async fn measured_pool(r: &Router) {
    for _ in 0..MIN_HEDGE_SAMPLES {
        r.hedging()
            .pool_latency()
            .record(Duration::from_millis(1), clock::now());
    }
    tokio::time::sleep(REFRESH).await;
}

#[tokio::test(start_paused = true)]
async fn unavailable_is_retried_once_on_another_backend() {
    // Whichever backend is picked first, the answer is OK after at most
    // one retry, and a retry never goes to the backend that failed.
    for _ in 0..10 {
        let f = router(&[Mode::Unavailable, Mode::Ok], no_hedging());
        let reply = call(&f.router, query(), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Ok as i32);
        assert!(f.calls(0) <= 1);
        assert_eq!(f.calls(1), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_max_retries_then_the_failure_is_answered() {
    let f = router(&[Mode::Unavailable; 3], no_hedging());
    let reply = call(&f.router, place("p-1"), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
    assert_eq!(f.total(), 2, "first attempt + one retry");
    assert_eq!(f.router.snapshot().retries, 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_saying_nothing_was_done_is_retried_elsewhere() {
    let f = router(&[Mode::RefuseUnavailable, Mode::Ok], no_hedging());
    for i in 0..5 {
        let reply = call(&f.router, query(), Duration::from_secs(2)).await;
        assert_eq!(reply.code(), Code::Ok as i32, "round {i}");
    }
    assert_eq!(f.calls(1), 5);
}

#[tokio::test(start_paused = true)]
async fn business_rejections_are_never_retried() {
    let f = router(&[Mode::Reject, Mode::Reject], no_hedging());
    let reply = call(&f.router, place("p-1"), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::InsufficientBalance as i32);
    assert_eq!(f.total(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_only_with_a_request_id() {
    let f = router(&[Mode::Internal, Mode::Internal], no_hedging());
    let reply = call(&f.router, query(), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::Internal as i32);
    assert_eq!(f.total(), 1, "a query without request_id is not retried");
    let reply = call(&f.router, place("p-1"), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::Internal as i32);
    assert_eq!(f.total(), 3, "a place with request_id is retried");
}

#[tokio::test(start_paused = true)]
async fn slow_attempt_is_hedged_and_the_loser_cancelled() {
    let cfg = ResilienceConfig {
        hedge_min_delay_ms: ms(10),
        hedge_max_delay_ms: ms(20),
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Slow(1_000), Mode::Slow(1)], cfg);
    // A measured pool (p95 1 ms, clamped to 10 ms).
    measured_pool(&f.router).await;
    for i in 0..6 {
        let started = Deadline::now();
        let reply = call(&f.router, place(&format!("h-{i}")), Duration::from_secs(3)).await;
        assert_eq!(reply.code(), Code::Ok as i32);
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "hedge answered"
        );
    }
    let s = f.router.snapshot();
    let slow_calls = f.calls(0);
    assert!(slow_calls >= 1, "the unknown backend is tried first");
    assert_eq!(s.hedges, slow_calls, "every slow first attempt was hedged");
    assert_eq!(s.hedge_wins, s.hedges);
    let slow = s.backends.iter().find(|b| b.url == f.urls[0]).unwrap();
    assert_eq!(slow.calls, slow_calls);
    assert_eq!(slow.cancelled, slow.calls, "losers are cancelled");
    assert!(
        slow.latency_ewma_ms >= 10.0,
        "a cancelled call still costs its wait"
    );
    assert!(slow_calls <= 2, "load balancing learns from lost hedges");
}

#[tokio::test(start_paused = true)]
async fn no_hedge_before_the_pool_is_measured() {
    let cfg = ResilienceConfig {
        hedge_min_delay_ms: ms(5),
        hedge_max_delay_ms: ms(5),
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Slow(100), Mode::Slow(100)], cfg);
    let reply = call(&f.router, place("cold"), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::Ok as i32);
    assert_eq!(f.total(), 1, "cold start: no p95 yet, no hedge");
    assert_eq!(f.router.snapshot().hedge_delay_ms, None);
}

#[tokio::test(start_paused = true)]
async fn queries_are_not_hedged() {
    let cfg = ResilienceConfig {
        hedge_min_delay_ms: ms(5),
        hedge_max_delay_ms: ms(5),
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Slow(100), Mode::Slow(100)], cfg);
    measured_pool(&f.router).await;
    let reply = call(&f.router, query(), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::Ok as i32);
    assert_eq!(f.total(), 1);
    assert_eq!(f.router.snapshot().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn no_hedge_to_a_busy_backend() {
    let cfg = ResilienceConfig {
        hedge_min_delay_ms: ms(5),
        hedge_max_delay_ms: ms(5),
        max_in_flight_per_backend: 2,
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Slow(100), Mode::Slow(100)], cfg);
    measured_pool(&f.router).await;
    // Each backend gets one long call: a hedge would make the target
    // use 2 of its 2 slots (more than half): slowness is load here.
    let r = f.router.clone();
    let a = tokio::spawn(async move { call(&r, query(), Duration::from_secs(2)).await });
    let r = f.router.clone();
    let b = tokio::spawn(async move { call(&r, query(), Duration::from_secs(2)).await });
    tokio::time::sleep(Duration::from_millis(1)).await;
    let reply = call(&f.router, place("busy"), Duration::from_secs(2)).await;
    assert_eq!(reply.code(), Code::Ok as i32);
    assert_eq!(a.await.unwrap().code(), Code::Ok as i32);
    assert_eq!(b.await.unwrap().code(), Code::Ok as i32);
    assert_eq!(f.router.snapshot().hedges, 0);
}

#[tokio::test(start_paused = true)]
async fn deadline_answers_timeout_with_retry_advice_and_counts_it() {
    let f = router(&[Mode::Slow(2_000)], no_hedging());
    let started = Deadline::now();
    let reply = call(&f.router, place("t-1"), Duration::from_millis(100)).await;
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(reply.code(), Code::Timeout as i32);
    let BackendReply::Place(p) = reply else {
        panic!("wrong reply type")
    };
    assert!(p.message.contains("outcome is unknown"), "{}", p.message);
    assert!(p.message.contains("same request_id"), "{}", p.message);
    assert_eq!(p.request_id, "t-1");
    let s = f.router.snapshot();
    assert_eq!(s.timeouts, 1, "every TIMEOUT answer is counted");
    assert_eq!(s.backends[0].timeouts, 1);
}

#[tokio::test(start_paused = true)]
async fn global_limit_refuses_at_once() {
    let cfg = ResilienceConfig {
        max_in_flight_global: 1,
        hedging: false,
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Slow(500)], cfg);
    let held = {
        let r = f.router.clone();
        tokio::spawn(async move { call(&r, place("held"), Duration::from_secs(3)).await })
    };
    while f.calls(0) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Deadline::now();
    let reply = call(&f.router, place("refused"), Duration::from_secs(3)).await;
    assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
    assert_eq!(started.elapsed(), Duration::ZERO, "not queued");
    assert_eq!(held.await.unwrap().code(), Code::Ok as i32);
    assert_eq!(f.router.snapshot().rejected_global, 1);
}

#[tokio::test(start_paused = true)]
async fn all_breakers_open_refuses_without_calling_anyone() {
    let cfg = ResilienceConfig {
        breaker_window: 2,
        max_retries: 0,
        hedging: false,
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Unavailable], cfg);
    for _ in 0..2 {
        call(&f.router, query(), Duration::from_secs(1)).await;
    }
    assert_eq!(f.total(), 2);
    let reply = call(&f.router, query(), Duration::from_secs(1)).await;
    assert_eq!(reply.code(), Code::ServiceUnavailable as i32);
    let BackendReply::Query(q) = reply else {
        panic!("wrong reply type")
    };
    assert!(
        q.message.contains("circuit breaker is open"),
        "{}",
        q.message
    );
    assert_eq!(f.total(), 2, "no call to an open backend");
    let id = f.router.snapshot().backends[0].id;
    f.router.set().reset_breaker(id).unwrap();
    call(&f.router, query(), Duration::from_secs(1)).await;
    assert_eq!(f.total(), 3, "reset breaker lets calls through");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_rate_limited_without_a_call() {
    let cfg = ResilienceConfig {
        account_rate_per_sec: 1,
        account_burst: 2,
        ..ResilienceConfig::default()
    };
    let f = router(&[Mode::Ok], cfg);
    let codes: Vec<i32> =
        futures::future::join_all((0..4).map(|_| call(&f.router, query(), Duration::from_secs(1))))
            .await
            .iter()
            .map(BackendReply::code)
            .collect();
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == Code::RateLimited as i32)
            .count(),
        2
    );
    assert_eq!(f.total(), 2);
}

#[tokio::test(start_paused = true)]
async fn reconfigure_validates_and_keeps_unchanged_state() {
    let f = router(&[Mode::Ok], ResilienceConfig::default());
    let bad = ResilienceConfig {
        breaker_window: 0,
        ..ResilienceConfig::default()
    };
    assert!(f.router.reconfigure(bad).is_err());
    assert_eq!(
        f.router.config().breaker_window,
        50,
        "a bad config changes nothing"
    );
    f.router
        .reconfigure(ResilienceConfig {
            max_retries: 3,
            max_in_flight_per_backend: 7,
            ..ResilienceConfig::default()
        })
        .unwrap();
    assert_eq!(f.router.config().max_retries, 3);
    assert_eq!(f.router.set().params().max_in_flight, 7, "backends follow");
}
