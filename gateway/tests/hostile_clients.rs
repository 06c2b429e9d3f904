//! Hostile clients against a real gateway on loopback (see `support`):
//! login brute force across connections, slowloris, silent connections,
//! huge pipelines, connection floods, replayed expired tokens and requests
//! for another account. Each test also checks that a well-behaved client on
//! the same gateway keeps being served.

mod support;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hts_gateway::frame::{Frame, MsgType};
use hts_gateway::mint_token;
use hts_proto::v1::{
    CancelOrderRequest, Code, Heartbeat, LoginRequest, PlaceOrderResponse, QueryOrderRequest,
};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A second client address (the whole 127.0.0.0/8 is loopback).
const OTHER_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LOCAL_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Places `n` orders one after the other and asserts each is OK.
async fn keeps_trading(client: &hts_client::Client, tag: &str, n: usize) {
    for i in 0..n {
        let r = client
            .place(place(&format!("{tag}-{i}"), "005930"))
            .await
            .unwrap();
        assert_eq!(r.code, Code::Ok as i32, "{tag}-{i}: {r:?}");
    }
}

// ------------------------------------------------------ login brute force

#[tokio::test]
async fn failed_logins_are_limited_per_source_address_across_connections() {
    let mut cfg = config(start_backend().await);
    cfg.max_failed_logins = 5;
    cfg.login_failures_per_source = 6;
    // Long window: nothing leaks away during the test.
    cfg.login_failure_window_secs = Duration::from_secs(600).into();
    let gw = start_gateway(cfg).await;
    // A session opened before the attack, from the attacked address.
    let trader = logged_in(gw.addr).await;

    // First connection: five wrong tokens, then the gateway closes it.
    let mut a = Raw::connect_from(gw.addr, LOCAL_SOURCE).await;
    for i in 1..=5 {
        let r = a.login_with("forged.token.value").await;
        assert_eq!(r.code, Code::Unauthenticated as i32, "attempt {i}");
    }
    a.expect_eof().await;

    // Reconnecting does not reset the count: the sixth failure is allowed...
    let mut b = Raw::connect_from(gw.addr, LOCAL_SOURCE).await;
    let r = b.login_with("forged.token.value").await;
    assert_eq!(r.code, Code::Unauthenticated as i32);
    // ...then even a valid token is refused unverified, and the connection closed.
    let r = b.login_with(&token(ACCOUNT)).await;
    assert_eq!(r.code, Code::RateLimited as i32, "{r:?}");
    assert!(r
        .message
        .contains("too many failed logins from this address"));
    assert!(r.message.contains("retry in"), "{}", r.message);
    assert!(r.session_id.is_empty());
    b.expect_eof().await;

    // A fresh connection from the same address is refused the same way.
    let mut c = Raw::connect_from(gw.addr, LOCAL_SOURCE).await;
    let r = c.login_with(&token(ACCOUNT)).await;
    assert_eq!(r.code, Code::RateLimited as i32, "{r:?}");
    c.expect_eof().await;

    // Another address logs in and trades normally.
    let mut other = Raw::connect_from(gw.addr, OTHER_SOURCE).await;
    other.login().await;
    other
        .send(Frame::request(
            MsgType::PlaceOrder,
            7,
            &place("other-1", "005930"),
        ))
        .await;
    let f = other.recv().await.unwrap();
    let p: PlaceOrderResponse = f.decode_body().unwrap();
    assert_eq!((f.correlation_id, p.code), (7, Code::Ok as i32));

    // The session opened before the attack is untouched.
    keeps_trading(&trader, "trader", 5).await;
    assert_eq!(gw.stats.logins_throttled(), 2);
    assert_eq!(gw.stats.login_sources_tracked(), 1);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_throttled_address_may_log_in_again_after_the_announced_wait() {
    let mut cfg = config(start_backend().await);
    // Two failures per 4 s: one failure leaks away every 2 s.
    cfg.login_failures_per_source = 2;
    cfg.login_failure_window_secs = Duration::from_secs(4).into();
    let gw = start_gateway(cfg).await;
    let mut a = Raw::connect(gw.addr).await;
    for _ in 0..2 {
        let r = a.login_with("forged.token.value").await;
        assert_eq!(r.code, Code::Unauthenticated as i32);
    }
    let r = a.login_with(&token(ACCOUNT)).await;
    assert_eq!(r.code, Code::RateLimited as i32, "{r:?}");
    assert!(r.message.contains("retry in 2 s"), "{}", r.message);
    a.expect_eof().await;

    // Waiting as told (plus a margin) is enough.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut b = Raw::connect(gw.addr).await;
    let r = b.login_with(&token(ACCOUNT)).await;
    assert_eq!(r.code, Code::Ok as i32, "{r:?}");
    gw.stop().await.unwrap();
}

// ------------------------------------------------------------- slowloris

#[tokio::test]
async fn slowloris_trickling_a_frame_is_cut_at_the_frame_deadline() {
    let mut cfg = config(start_backend().await);
    cfg.frame_read_timeout_ms = Duration::from_secs(1).into();
    let gw = start_gateway(cfg).await;
    let trader = logged_in(gw.addr).await;

    // A valid LOGIN frame, one byte every 40 ms: the whole frame would take
    // several seconds, far longer than the 1 s frame deadline.
    let frame = Raw::encode(Frame::request(
        MsgType::Login,
        9,
        &LoginRequest {
            account_id: String::new(),
            token: token(ACCOUNT),
            ..Default::default()
        },
    ));
    let frame_len = frame.len();
    assert!(frame_len > 100, "{frame_len}");
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(gw.addr)
        .await
        .unwrap()
        .into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let trickle = {
        let sent = sent.clone();
        tokio::spawn(async move {
            for byte in frame.iter() {
                if wr.write_all(&[*byte]).await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    // Meanwhile another client trades normally.
    keeps_trading(&trader, "slowloris", 20).await;
    let mut raw = Vec::new();
    within(rd.read_to_end(&mut raw)).await.unwrap();
    let elapsed = started.elapsed();
    let cut_after = sent.load(Ordering::SeqCst);
    trickle.abort();

    let mut buf = BytesMut::from(&raw[..]);
    let f = next_frame(&mut buf).expect("one ERROR frame before the close");
    let e = error_of(&f);
    assert_eq!(e.code, Code::ProtocolError as i32);
    assert!(
        e.message.contains("frame not completed within 1 s"),
        "{}",
        e.message
    );
    assert!(buf.is_empty(), "nothing after the ERROR frame");
    // Closed at the deadline, not when the trickle ended: trickling bytes
    // does not reset the frame timer.
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(
        cut_after < frame_len,
        "the trickled frame was never completed ({cut_after} of {frame_len} bytes sent)"
    );
    keeps_trading(&trader, "after-slowloris", 5).await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn silent_and_heartbeat_only_connections_are_closed_at_the_login_timeout() {
    let mut cfg = config(start_backend().await);
    cfg.login_timeout_secs = Duration::from_secs(1).into();
    let gw = start_gateway(cfg).await;
    let trader = logged_in(gw.addr).await;
    let mut silent = Raw::connect(gw.addr).await;
    // Heartbeats are answered, but they do not postpone the login deadline.
    let mut chatty = Raw::connect(gw.addr).await;
    let started = Instant::now();
    let mut answered = 0;
    let closing = loop {
        chatty.send_bytes(&heartbeat_bytes(answered + 1)).await;
        let f = chatty.recv().await.expect("a frame");
        if f.msg_type == MsgType::Error.as_u16() {
            break f;
        }
        assert_eq!(f.msg_type, MsgType::Heartbeat.as_u16());
        answered += 1;
        assert!(answered < 1000, "heartbeats kept the connection open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(answered >= 2, "heartbeats were answered: {answered}");
    assert!(started.elapsed() >= Duration::from_secs(1));
    let e = error_of(&closing);
    assert_eq!(e.code, Code::Unauthenticated as i32);
    assert!(
        e.message.contains("not logged in within 1 s"),
        "{}",
        e.message
    );
    chatty.expect_eof().await;
    let e = error_of(&silent.recv().await.expect("ERROR frame"));
    assert_eq!(e.code, Code::Unauthenticated as i32);
    silent.expect_eof().await;
    // Their slots are free again; the logged-in trader was never touched.
    within(async {
        while gw.stats.open_connections() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    keeps_trading(&trader, "login-timeout", 5).await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_logged_in_connection_that_goes_silent_is_closed_at_the_idle_timeout() {
    let mut cfg = config(start_backend().await);
    cfg.idle_timeout_secs = Duration::from_secs(1).into();
    let gw = start_gateway(cfg).await;
    let mut idle = Raw::connect(gw.addr).await;
    idle.login().await;
    let e = error_of(&idle.recv().await.expect("ERROR frame"));
    assert_eq!(e.code, Code::Timeout as i32);
    assert!(
        e.message.contains("closing idle connection"),
        "{}",
        e.message
    );
    idle.expect_eof().await;
    gw.stop().await.unwrap();
}

// -------------------------------------------------------- huge pipelines

#[tokio::test]
async fn a_huge_pipeline_is_capped_in_flight_and_every_request_answered_once() {
    const CAP: usize = 8;
    const N: u64 = 2000;
    let mut cfg = config(start_backend().await);
    cfg.max_in_flight_per_connection = CAP;
    let gw = start_gateway(cfg).await;
    let trader = logged_in(gw.addr).await;
    let mut raw = Raw::connect(gw.addr).await;
    raw.login().await;

    // Watch the gateway's in-flight backend requests while the flood runs.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (stats, watching) = (gw.stats.clone(), watching.clone());
        tokio::spawn(async move {
            let mut peak = 0;
            while watching.load(Ordering::SeqCst) {
                peak = peak.max(stats.correlation_len());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            peak
        })
    };

    // 2000 orders in one write, each taking the backend 5 ms; nothing is
    // read back until the whole batch has been written.
    let mut batch = BytesMut::new();
    for i in 0..N {
        let req = place(&format!("pipe-{i}"), "DELAY-5");
        batch.extend_from_slice(&Raw::encode(Frame::request(MsgType::PlaceOrder, i, &req)));
    }
    let (mut rd, mut wr) = raw.stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&batch).await.unwrap();
        wr
    });
    // Another client trades while the pipeline is being worked off.
    keeps_trading(&trader, "beside-pipeline", 20).await;
    let mut wr = within(writer).await.unwrap();

    let mut seen = HashSet::new();
    let mut buf = raw.buf;
    within(async {
        while (seen.len() as u64) < N {
            while let Some(f) = next_frame(&mut buf) {
                assert_eq!(f.msg_type, MsgType::PlaceOrder.as_u16(), "{f:?}");
                let r: PlaceOrderResponse = f.decode_body().unwrap();
                assert_eq!(r.code, Code::Ok as i32, "{r:?}");
                assert_eq!(r.request_id, format!("pipe-{}", f.correlation_id));
                assert!(seen.insert(f.correlation_id), "answered twice: {f:?}");
            }
            if (seen.len() as u64) < N {
                assert!(rd.read_buf(&mut buf).await.unwrap() > 0, "closed early");
            }
        }
    })
    .await;
    // No extra answer is pending: the next frame answers the next request.
    wr.write_all(&heartbeat_bytes(N + 1)).await.unwrap();
    let next = within(async {
        loop {
            if let Some(f) = next_frame(&mut buf) {
                return f;
            }
            assert!(rd.read_buf(&mut buf).await.unwrap() > 0, "closed early");
        }
    })
    .await;
    assert_eq!(
        (next.msg_type, next.correlation_id),
        (MsgType::Heartbeat.as_u16(), N + 1)
    );
    watching.store(false, Ordering::SeqCst);
    let peak = watcher.await.unwrap();
    // The pipeline holds at most CAP requests in flight; the trader at most 1.
    assert!(peak <= CAP + 1, "peak in flight {peak}");
    assert!(peak >= 2, "the watcher saw the pipeline work: {peak}");
    assert_eq!(gw.stats.correlation_len(), 0);
    gw.stop().await.unwrap();
}

// ------------------------------------------------------ connection flood

#[tokio::test]
async fn a_connection_flood_is_refused_cleanly_while_existing_clients_trade() {
    const MAX: usize = 8;
    const FLOOD: usize = 300;
    let mut cfg = config(start_backend().await);
    cfg.max_connections = MAX;
    let gw = start_gateway(cfg).await;
    let mut traders = Vec::new();
    for _ in 0..3 {
        traders.push(logged_in(gw.addr).await);
    }
    // Fill the remaining slots with connections that never log in.
    let mut holders = Vec::new();
    for _ in 0..MAX - 3 {
        holders.push(Raw::connect(gw.addr).await);
    }
    within(async {
        while gw.stats.open_connections() < MAX {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The flood: half the connections say nothing, half send a LOGIN at once.
    let addr = gw.addr;
    let flood = (0..FLOOD).map(|i| async move {
        let mut raw = Raw::connect(addr).await;
        if i % 2 == 1 {
            let req = LoginRequest {
                account_id: String::new(),
                token: token(ACCOUNT),
                ..Default::default()
            };
            // The gateway may already have closed: a failed write is fine.
            let _ = raw
                .stream
                .write_all(&Raw::encode(Frame::request(MsgType::Login, 1, &req)))
                .await;
        }
        raw.recv().await
    });
    let trading = async {
        for (n, t) in traders.iter().enumerate() {
            keeps_trading(t, &format!("flood-{n}"), 10).await;
        }
    };
    let (answers, ()) =
        within(async { tokio::join!(futures::future::join_all(flood), trading) }).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let f = answer.unwrap_or_else(|| panic!("flood connection {i} got no ERROR frame"));
        assert_eq!(f.correlation_id, 0);
        let e = error_of(&f);
        assert_eq!(e.code, Code::ServiceUnavailable as i32, "{i}");
        assert_eq!(e.message, "too many connections");
    }
    assert_eq!(gw.stats.rejected_connections(), FLOOD as u64);
    assert_eq!(gw.stats.open_connections(), MAX);

    // A freed slot is usable again at once.
    drop(holders.pop());
    within(async {
        while gw.stats.open_connections() >= MAX {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let late = logged_in(gw.addr).await;
    keeps_trading(&late, "after-flood", 3).await;
    for (n, t) in traders.iter().enumerate() {
        keeps_trading(t, &format!("after-flood-{n}"), 2).await;
    }
    gw.stop().await.unwrap();
}

// --------------------------------------------------- tokens after expiry

/// Waits until the JWT clock is past `exp`.
async fn until_expired(exp: u64) {
    within(async {
        while jsonwebtoken::get_current_timestamp() <= exp {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_ends_its_session_and_cannot_be_replayed() {
    let gw = default_gateway().await;
    let short = mint_token(SECRET, ACCOUNT, Duration::from_secs(1)).unwrap();
    let exp = jsonwebtoken::get_current_timestamp() + 1;
    let mut session = Raw::connect(gw.addr).await;
    let r = session.login_with(&short).await;
    assert_eq!(r.code, Code::Ok as i32, "{r:?}");
    // An order in flight when the token expires is still answered.
    session
        .send(Frame::request(
            MsgType::PlaceOrder,
            2,
            &place("expiring-1", "DELAY-2500"),
        ))
        .await;
    // A second connection extends its session by logging in again.
    let mut renewed = Raw::connect(gw.addr).await;
    assert_eq!(renewed.login_with(&short).await.code, Code::Ok as i32);
    assert_eq!(
        renewed.login_with(&token(ACCOUNT)).await.code,
        Code::Ok as i32
    );

    let f = session.recv().await.expect("the in-flight answer");
    let p: PlaceOrderResponse = f.decode_body().unwrap();
    assert_eq!((f.correlation_id, p.code), (2, Code::Ok as i32));
    let e = error_of(&session.recv().await.expect("closing ERROR"));
    assert_eq!(e.code, Code::Unauthenticated as i32);
    assert!(e.message.contains("session token expired"), "{}", e.message);
    session.expect_eof().await;

    // Replaying the expired token is refused.
    until_expired(exp).await;
    let mut replay = Raw::connect(gw.addr).await;
    let r = replay.login_with(&short).await;
    assert_eq!(r.code, Code::Unauthenticated as i32);
    assert!(r.message.contains("expired"), "{}", r.message);
    // The renewed session outlived the short token.
    renewed.send_bytes(&heartbeat_bytes(5)).await;
    let hb = renewed.recv().await.unwrap();
    assert_eq!(
        (hb.msg_type, hb.correlation_id),
        (MsgType::Heartbeat.as_u16(), 5)
    );
    let _: Heartbeat = hb.decode_body().unwrap();
    gw.stop().await.unwrap();
}

// ------------------------------------------------ cross-account requests

#[tokio::test]
async fn requests_always_run_as_the_session_account() {
    let gw = default_gateway().await;
    let client = logged_in(gw.addr).await;
    // A PLACE naming another account is FORBIDDEN at the gateway
    // (gateway_tcp::placing_for_another_account_is_forbidden). CANCEL and QUERY carry no account: the backend is always told the
    // session's account (the double echoes it), which it checks the order
    // against (order-core answers another account's order like a missing one).
    let q = client
        .query(QueryOrderRequest {
            order_id: "ord-of-ACC-2".into(),
        })
        .await
        .unwrap();
    assert_eq!(q.order.unwrap().account_id, ACCOUNT);
    let p = client.place(place("own-1", "005930")).await.unwrap();
    assert_eq!((p.code, p.message.as_str()), (Code::Ok as i32, ACCOUNT));
    let c = client
        .cancel(CancelOrderRequest {
            request_id: "c-1".into(),
            order_id: "ord-of-ACC-2".into(),
        })
        .await
        .unwrap();
    assert_eq!(c.code, Code::Ok as i32);
    gw.stop().await.unwrap();
}
