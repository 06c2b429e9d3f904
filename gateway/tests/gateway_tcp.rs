//! End-to-end tests over real TCP: a `Gateway` on 127.0.0.1:0 in front of
//! an in-process tonic OrderService test double (see `support`).

mod support;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use hts_client::{Client, ClientError};
use hts_gateway::frame::{Frame, MsgType, FLAG_RESPONSE, HEADER_LEN};
use hts_gateway::{mint_token, Gateway, GatewayConfig};
use hts_proto::v1::{
    CancelOrderRequest, CancelOrderResponse, Code, ErrorResponse, Heartbeat, PlaceOrderRequest,
    PlaceOrderResponse, QueryOrderRequest,
};
use prost::Message;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn login_outcomes() {
    let gw = default_gateway().await;
    let client = Client::connect(gw.addr).await.unwrap();

    let forged = mint_token(b"someone-else", ACCOUNT, Duration::from_secs(600)).unwrap();
    let r = client.login(ACCOUNT, &forged).await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32);
    assert!(r.session_id.is_empty());

    #[derive(serde::Serialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims {
            sub: ACCOUNT.into(),
            exp: jsonwebtoken::get_current_timestamp() - 10,
        },
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let r = client.login(ACCOUNT, &expired).await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32);
    assert!(r.message.contains("expired"), "{}", r.message);

    let r = client.login(ACCOUNT, "not.a.jwt").await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32);

    let r = client.login("ACC-2", &token(ACCOUNT)).await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32);

    // Four failures are below the limit: the connection still works.
    let r = client.login("", &token(ACCOUNT)).await.unwrap();
    assert_eq!(r.code, Code::Ok as i32);
    assert_eq!(r.session_id.len(), 36, "uuid v4 expected: {}", r.session_id);
    let p = client.place(place("r-1", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    assert_eq!(p.message, ACCOUNT, "backend must see the session account");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_login_as_another_account_is_refused_and_the_session_stays() {
    let gw = default_gateway().await;
    let client = Client::connect(gw.addr).await.unwrap();
    assert_eq!(
        client.login("", &token(ACCOUNT)).await.unwrap().code,
        Code::Ok as i32
    );
    // A valid token of another account: FORBIDDEN, session unchanged.
    let other = mint_token(SECRET, "ACC-2", Duration::from_secs(600)).unwrap();
    let r = client.login("", &other).await.unwrap();
    assert_eq!(r.code, Code::Forbidden as i32, "{}", r.message);
    assert!(r.message.contains(ACCOUNT), "{}", r.message);
    let p = client.place(place("still-me", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    assert_eq!(
        p.message, ACCOUNT,
        "requests still run as the first account"
    );
    // The same account may log in again (a fresh token renews the session).
    assert_eq!(
        client.login("", &token(ACCOUNT)).await.unwrap().code,
        Code::Ok as i32
    );
    // A token whose nbf is in the future is refused (RFC 7519).
    #[derive(serde::Serialize)]
    struct Claims {
        sub: String,
        exp: u64,
        nbf: u64,
    }
    let now = jsonwebtoken::get_current_timestamp();
    let early = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &Claims {
            sub: ACCOUNT.into(),
            exp: now + 600,
            nbf: now + 60,
        },
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let fresh = Client::connect(gw.addr).await.unwrap();
    let r = fresh.login(ACCOUNT, &early).await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32);
    assert!(r.message.contains("nbf"), "{}", r.message);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn too_many_failed_logins_close_the_connection() {
    let gw = default_gateway().await;
    let client = Client::connect(gw.addr).await.unwrap();
    for i in 1..=5 {
        let r = client.login(ACCOUNT, "garbage").await.unwrap();
        assert_eq!(r.code, Code::Unauthenticated as i32);
        if i == 5 {
            assert!(
                r.message.contains("too many failed logins"),
                "{}",
                r.message
            );
        }
    }
    let after = within(client.heartbeat()).await;
    assert!(matches!(after, Err(ClientError::Closed)), "{after:?}");
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn requests_before_login_are_unauthenticated_and_connection_survives() {
    let gw = default_gateway().await;
    let client = Client::connect(gw.addr).await.unwrap();
    let p = client.place(place("r-early", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Unauthenticated as i32);
    assert_eq!(p.request_id, "r-early");
    let c = client
        .cancel(CancelOrderRequest {
            request_id: "c".into(),
            order_id: "o-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(c.code, Code::Unauthenticated as i32);
    let q = client
        .query(QueryOrderRequest {
            order_id: "o-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(q.code, Code::Unauthenticated as i32);

    let r = client.login(ACCOUNT, &token(ACCOUNT)).await.unwrap();
    assert_eq!(r.code, Code::Ok as i32);
    let p = client.place(place("r-late", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    assert_eq!(p.order_id, "ord-r-late");
    let c = client
        .cancel(CancelOrderRequest {
            request_id: "c".into(),
            order_id: "o-1".into(),
        })
        .await
        .unwrap();
    assert_eq!((c.code, c.order_id.as_str()), (Code::Ok as i32, "o-1"));
    let q = client
        .query(QueryOrderRequest {
            order_id: "missing".into(),
        })
        .await
        .unwrap();
    assert_eq!(q.code, Code::NotFound as i32);
    let hb = client.heartbeat().await.unwrap();
    assert!(hb.sent_at_unix_nanos > 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn placing_for_another_account_is_forbidden() {
    let gw = default_gateway().await;
    let client = logged_in(gw.addr).await;
    let mut req = place("r-other", "005930");
    req.account_id = "ACC-2".into();
    let p = client.place(req).await.unwrap();
    assert_eq!(p.code, Code::Forbidden as i32);
    assert_eq!(p.request_id, "r-other");
    let mut req = place("r-own", "005930");
    req.account_id = ACCOUNT.into();
    assert_eq!(client.place(req).await.unwrap().code, Code::Ok as i32);
    assert!(gw.stats.responses_with_code(Code::Forbidden) >= 1);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_complete_out_of_order() {
    let gw = default_gateway().await;
    let mut raw = Raw::connect(gw.addr).await;
    raw.login().await;
    const N: u64 = 200;
    let mut batch = BytesMut::new();
    for i in 0..N {
        // Earlier requests are slower: answers should come back reordered.
        let delay = (N - i) * 5;
        let req = place(&format!("r-{i}"), &format!("DELAY-{delay}"));
        batch.extend_from_slice(&Raw::encode(Frame::request(
            MsgType::PlaceOrder,
            1000 + i,
            &req,
        )));
    }
    raw.send_bytes(&batch).await;
    let mut order = Vec::new();
    for _ in 0..N {
        let f = raw.recv().await.expect("response");
        assert_eq!(f.msg_type, MsgType::PlaceOrder.as_u16());
        assert_eq!(f.flags, FLAG_RESPONSE);
        let resp: PlaceOrderResponse = f.decode_body().unwrap();
        assert_eq!(resp.code, Code::Ok as i32, "{resp:?}");
        assert_eq!(resp.request_id, format!("r-{}", f.correlation_id - 1000));
        order.push(f.correlation_id);
    }
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1000..1000 + N).collect::<Vec<_>>());
    assert_ne!(order, sorted, "responses should follow completion order");
    assert_eq!(gw.stats.correlation_len(), 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn many_concurrent_calls_on_one_client() {
    let gw = default_gateway().await;
    let client = logged_in(gw.addr).await;
    let calls = (0..2000).map(|i| {
        let c = client.clone();
        async move { c.place(place(&format!("r-{i}"), "005930")).await }
    });
    let results = within(futures::future::join_all(calls)).await;
    for (i, r) in results.into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.code, Code::Ok as i32);
        assert_eq!(r.request_id, format!("r-{i}"));
    }
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn header_and_crc_errors_get_one_protocol_error_then_close() {
    let gw = default_gateway().await;
    type Corrupt = fn(&mut BytesMut);
    let cases: [(&str, Corrupt, u64, &str); 6] = [
        ("bad crc", |b| b[HEADER_LEN] ^= 0xff, 77, "CRC"),
        ("bad magic", |b| b[0] = b'X', 0, "magic"),
        ("bad version", |b| b[2] = 9, 0, "version"),
        ("reserved", |b| b[6] = 1, 77, "reserved"),
        ("response flag", |b| b[3] = FLAG_RESPONSE, 77, "RESPONSE"),
        (
            "oversized",
            |b| b[16..20].copy_from_slice(&(1u32 << 20).to_be_bytes()),
            77,
            "exceeds",
        ),
    ];
    for (name, corrupt, corr, needle) in cases {
        let mut raw = Raw::connect(gw.addr).await;
        let mut bytes = heartbeat_bytes(77);
        corrupt(&mut bytes);
        raw.send_bytes(&bytes).await;
        let f = raw
            .recv()
            .await
            .unwrap_or_else(|| panic!("{name}: no error frame"));
        let e = error_of(&f);
        assert_eq!(e.code, Code::ProtocolError as i32, "{name}");
        assert_eq!(f.correlation_id, corr, "{name}");
        assert!(e.message.contains(needle), "{name}: {}", e.message);
        raw.expect_eof().await;
    }
    // The oversized header alone (no body sent) is rejected.
    let mut raw = Raw::connect(gw.addr).await;
    let mut bytes = heartbeat_bytes(5);
    bytes[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
    raw.send_bytes(&bytes[..HEADER_LEN]).await;
    let e = error_of(&raw.recv().await.unwrap());
    assert_eq!(e.code, Code::ProtocolError as i32);
    raw.expect_eof().await;
    assert!(gw.stats.responses_with_code(Code::ProtocolError) >= 7);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_type_and_bad_protobuf_are_recoverable() {
    let gw = default_gateway().await;
    let mut raw = Raw::connect(gw.addr).await;
    raw.login().await;
    raw.send(Frame {
        msg_type: 42,
        flags: 0,
        correlation_id: 10,
        body: bytes::Bytes::new(),
    })
    .await;
    let f = raw.recv().await.unwrap();
    assert_eq!(f.correlation_id, 10);
    let e = error_of(&f);
    assert_eq!(e.code, Code::InvalidRequest as i32);
    assert!(e.message.contains("42"), "{}", e.message);

    raw.send(Frame {
        msg_type: MsgType::PlaceOrder.as_u16(),
        flags: 0,
        correlation_id: 11,
        body: bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]),
    })
    .await;
    let f = raw.recv().await.unwrap();
    assert_eq!(f.correlation_id, 11);
    assert_eq!(error_of(&f).code, Code::InvalidRequest as i32);

    // A client must not send ERROR frames either.
    raw.send(Frame::request(
        MsgType::Error,
        12,
        &ErrorResponse::default(),
    ))
    .await;
    assert_eq!(
        error_of(&raw.recv().await.unwrap()).code,
        Code::InvalidRequest as i32
    );

    raw.send(Frame::request(
        MsgType::PlaceOrder,
        13,
        &place("r-ok", "005930"),
    ))
    .await;
    let f = raw.recv().await.unwrap();
    assert_eq!(f.correlation_id, 13);
    let p: PlaceOrderResponse = f.decode_body().unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn half_sent_frame_times_out_without_disturbing_others() {
    let mut cfg = config(start_backend().await);
    cfg.frame_read_timeout_ms = Duration::from_millis(300).into();
    let gw = start_gateway(cfg).await;
    let mut slow = Raw::connect(gw.addr).await;
    let bytes = heartbeat_bytes(3);
    // Trickle: header now, one more byte later; the timer is not reset.
    slow.send_bytes(&bytes[..HEADER_LEN]).await;
    let other = logged_in(gw.addr).await;
    let trickle = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = slow
            .stream
            .write_all(&bytes[HEADER_LEN..HEADER_LEN + 1])
            .await;
        slow.recv().await
    };
    let served = async {
        for i in 0..20 {
            let r = other
                .place(place(&format!("r-{i}"), "005930"))
                .await
                .unwrap();
            assert_eq!(r.code, Code::Ok as i32);
        }
    };
    let (frame, ()) = within(async { tokio::join!(trickle, served) }).await;
    let e = error_of(&frame.expect("error frame"));
    assert_eq!(e.code, Code::ProtocolError as i32);
    assert!(
        e.message.contains("frame not completed within 0.3 s"),
        "{}",
        e.message
    );
    slow.expect_eof().await;
    assert!(other.heartbeat().await.unwrap().sent_at_unix_nanos > 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn login_timeout_closes_anonymous_connection() {
    let mut cfg = config(start_backend().await);
    cfg.login_timeout_secs = Duration::from_millis(300).into();
    let gw = start_gateway(cfg).await;
    let mut raw = Raw::connect(gw.addr).await;
    let e = error_of(&raw.recv().await.unwrap());
    assert_eq!(e.code, Code::Unauthenticated as i32);
    raw.expect_eof().await;
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn stalled_reader_does_not_slow_other_clients() {
    let mut cfg = config(start_backend().await);
    cfg.write_timeout_ms = Duration::from_millis(500).into();
    let gw = start_gateway(cfg).await;

    // A client that floods 32 KiB heartbeats (unknown field 15 keeps them
    // valid) and never reads a single response.
    let mut stalled = TcpStream::connect(gw.addr).await.unwrap();
    let mut body = BytesMut::new();
    Heartbeat {
        sent_at_unix_nanos: 1,
    }
    .encode(&mut body)
    .unwrap();
    body.put_u8((15 << 3) | 2);
    prost::encoding::encode_varint(32 * 1024, &mut body);
    body.put_bytes(b'x', 32 * 1024);
    let frame = Raw::encode(Frame {
        msg_type: MsgType::Heartbeat.as_u16(),
        flags: 0,
        correlation_id: 1,
        body: body.freeze(),
    });
    let flood = tokio::spawn(async move {
        // Ends when the gateway disconnects us.
        for _ in 0..100_000 {
            if stalled.write_all(&frame).await.is_err() {
                return;
            }
        }
    });

    let other = logged_in(gw.addr).await;
    within(async {
        for i in 0..50 {
            let r = other
                .place(place(&format!("r-{i}"), "005930"))
                .await
                .unwrap();
            assert_eq!(r.code, Code::Ok as i32);
        }
    })
    .await;
    // The stalled client is eventually disconnected.
    within(flood).await.unwrap();
    within(async {
        while gw.stats.open_connections() > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(other.heartbeat().await.unwrap().sent_at_unix_nanos > 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn slow_backend_yields_timeout_with_outcome_unknown() {
    let mut cfg = config(start_backend().await);
    cfg.request_timeout_ms = Duration::from_millis(200).into();
    let gw = start_gateway(cfg).await;
    let client = logged_in(gw.addr).await;
    let r = client.place(place("r-slow", "DELAY-3000")).await.unwrap();
    assert_eq!(r.code, Code::Timeout as i32, "{r:?}");
    assert_eq!(r.request_id, "r-slow");
    assert_eq!(
        r.message,
        "deadline of 200 ms passed before the backend answered: the outcome is unknown; \
         retrying with the same request_id is safe"
    );
    assert_eq!(gw.stats.correlation_len(), 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn backend_down_is_service_unavailable() {
    let gw = start_gateway(config(dead_backend().await)).await;
    let client = logged_in(gw.addr).await;
    let r = client.place(place("r-down", "005930")).await.unwrap();
    assert_eq!(r.code, Code::ServiceUnavailable as i32, "{r:?}");
    assert_eq!(r.request_id, "r-down");
    let q = client
        .query(QueryOrderRequest {
            order_id: "o".into(),
        })
        .await
        .unwrap();
    assert_eq!(q.code, Code::ServiceUnavailable as i32);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let mut cfg = config(start_backend().await);
    cfg.max_connections = 1;
    let gw = start_gateway(cfg).await;
    let first = logged_in(gw.addr).await;
    let mut second = Raw::connect(gw.addr).await;
    let f = second.recv().await.unwrap();
    assert_eq!(f.correlation_id, 0);
    let e = error_of(&f);
    assert_eq!(e.code, Code::ServiceUnavailable as i32);
    assert_eq!(e.message, "too many connections");
    second.expect_eof().await;
    assert_eq!(
        first.place(place("r", "005930")).await.unwrap().code,
        Code::Ok as i32
    );
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_answers_in_flight_requests() {
    let gw = default_gateway().await;
    let client = logged_in(gw.addr).await;
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move { c.place(place(&format!("r-{i}"), "DELAY-500")).await })
        })
        .collect();
    within(async {
        while gw.stats.correlation_len() < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stats = gw.stats.clone();
    gw.stop().await.unwrap();
    for call in calls {
        let r = call.await.unwrap().unwrap();
        assert_eq!(r.code, Code::Ok as i32);
    }
    assert_eq!(stats.open_connections(), 0);
    assert_eq!(stats.correlation_len(), 0);
    // The connection was closed after draining.
    assert!(matches!(
        within(client.heartbeat()).await,
        Err(ClientError::Closed)
    ));
}

/// A PLACE whose request_id fills the whole frame (max_body_len): echoing
/// it in the answer used to exceed the frame limit, the writer failed and
/// the connection closed with every other answer lost
/// (fuzz/regressions/protobuf_handlers).
fn place_with_huge_request_id(max_body_len: usize) -> PlaceOrderRequest {
    // Field tag (1 byte) and a 3-byte length: the body is exactly the limit.
    let req = PlaceOrderRequest {
        request_id: "r".repeat(max_body_len - 4),
        ..Default::default()
    };
    assert_eq!(req.encoded_len(), max_body_len);
    req
}

#[tokio::test]
async fn ids_too_long_to_echo_are_refused_and_the_connection_survives() {
    let gw = default_gateway().await;
    let max = GatewayConfig::default().max_body_len;
    let mut raw = Raw::connect(gw.addr).await;
    // Before login: UNAUTHENTICATED, typed, without the echo.
    let huge = place_with_huge_request_id(max);
    raw.send(Frame::request(MsgType::PlaceOrder, 20, &huge))
        .await;
    let f = raw
        .recv()
        .await
        .expect("an answer, not a closed connection");
    assert_eq!((f.msg_type, f.correlation_id), (2, 20));
    let p: PlaceOrderResponse = f.decode_body().unwrap();
    assert_eq!(p.code, Code::Unauthenticated as i32);
    assert_eq!(p.request_id, "");

    raw.login().await;
    raw.send(Frame::request(MsgType::PlaceOrder, 21, &huge))
        .await;
    let p: PlaceOrderResponse = raw.recv().await.unwrap().decode_body().unwrap();
    assert_eq!(p.code, Code::InvalidRequest as i32);
    assert!(p.message.contains("request_id"), "{}", p.message);
    assert_eq!(p.request_id, "");
    let cancel = CancelOrderRequest {
        request_id: "c".into(),
        order_id: "o".repeat(65),
    };
    raw.send(Frame::request(MsgType::CancelOrder, 22, &cancel))
        .await;
    let c: CancelOrderResponse = raw.recv().await.unwrap().decode_body().unwrap();
    assert_eq!(c.code, Code::InvalidRequest as i32);
    assert_eq!(c.order_id, "");
    // 64 bytes still go through and are echoed.
    let at_limit = place(&"r".repeat(64), "005930");
    raw.send(Frame::request(MsgType::PlaceOrder, 23, &at_limit))
        .await;
    let p: PlaceOrderResponse = raw.recv().await.unwrap().decode_body().unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    assert_eq!(p.request_id.len(), 64);
    assert_eq!(gw.stats.responses_with_code(Code::InvalidRequest), 2);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn limits_a_connection_cannot_be_built_with_are_refused_at_start() {
    // fuzz/regressions/config_file: these values made tokio's Semaphore
    // panic in the accept loop or in every connection task.
    for (key, mutate) in [
        (
            "max_connections",
            (|c: &mut GatewayConfig| c.max_connections = i64::MAX as usize) as fn(&mut _),
        ),
        ("max_in_flight_per_connection", |c| {
            c.max_in_flight_per_connection = i64::MAX as usize
        }),
        ("max_body_len", |c| c.max_body_len = 16),
    ] {
        let mut c = config(dead_backend().await);
        mutate(&mut c);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = Gateway::from_listener(listener, c).unwrap_err();
        assert!(err.to_string().contains(key), "{key}: {err:#}");
    }
}
