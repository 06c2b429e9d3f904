//! TLS on the client listener (rustls, ring provider), against a real
//! gateway on loopback with a throwaway CA made by `rcgen`: clients log in
//! and trade over TLS; wrong names, untrusted CAs, plain-TCP clients and
//! stalled handshakes fail cleanly, are counted, and harm nobody else.

mod support;

use std::time::{Duration, Instant};

use hts_client::tls::{client_config, load_client_config};
use hts_client::{Client, ClientError};
use hts_gateway::frame::{Frame, MsgType};
use hts_gateway::tls::load_server_config;
use hts_gateway::tls::rustls::pki_types::pem::PemObject;
use hts_gateway::tls::rustls::pki_types::CertificateDer;
use hts_gateway::GatewayConfig;
use hts_proto::v1::{Code, LoginRequest};
use support::pki::{PkiFiles, TestPki};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway config with TLS from a fresh PKI; returns the PKI files too.
async fn tls_gateway_config(dir: &tempfile::TempDir) -> (GatewayConfig, PkiFiles) {
    let files = TestPki::new().write(dir.path());
    let mut cfg = config(start_backend().await);
    cfg.tls = Some(load_server_config(&files.cert, &files.key).expect("server TLS config"));
    (cfg, files)
}

async fn tls_client(gw: &TestGateway, files: &PkiFiles) -> Client {
    let cc = load_client_config(&files.ca).expect("client TLS config");
    let client = Client::connect_tls(gw.addr, "localhost", cc)
        .await
        .expect("TLS connect");
    let r = client.login(ACCOUNT, &token(ACCOUNT)).await.unwrap();
    assert_eq!(r.code, Code::Ok as i32, "{r:?}");
    client
}

/// Reads until the gateway closes (EOF or reset); returns what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    within(async {
        let mut chunk = [0u8; 1024];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    got
}

async fn failures_reach(gw: &TestGateway, n: u64) {
    within(async {
        while gw.stats.tls_handshake_failures() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn clients_log_in_and_trade_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, files) = tls_gateway_config(&dir).await;
    let gw = start_gateway(cfg).await;
    let cc = load_client_config(&files.ca).unwrap();
    // The certificate names both localhost and 127.0.0.1.
    for name in ["localhost", "127.0.0.1"] {
        let client = Client::connect_tls(gw.addr, name, cc.clone())
            .await
            .unwrap();
        let r = client.login(ACCOUNT, &token(ACCOUNT)).await.unwrap();
        assert_eq!(r.code, Code::Ok as i32, "{name}: {r:?}");
        let p = client
            .place(place(&format!("tls-{name}"), "005930"))
            .await
            .unwrap();
        assert_eq!((p.code, p.message.as_str()), (Code::Ok as i32, ACCOUNT));
        assert!(client.heartbeat().await.unwrap().sent_at_unix_nanos > 0);
    }
    // Many concurrent calls multiplexed over one TLS connection.
    let client = tls_client(&gw, &files).await;
    let calls = (0..200).map(|i| {
        let c = client.clone();
        async move { c.place(place(&format!("tls-many-{i}"), "005930")).await }
    });
    for r in within(futures::future::join_all(calls)).await {
        assert_eq!(r.unwrap().code, Code::Ok as i32);
    }
    assert_eq!(gw.stats.tls_handshake_failures(), 0);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_server_name_and_untrusted_ca_fail_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, files) = tls_gateway_config(&dir).await;
    let gw = start_gateway(cfg).await;
    let trader = tls_client(&gw, &files).await;

    let cc = load_client_config(&files.ca).unwrap();
    let e = Client::connect_tls(gw.addr, "gateway.example", cc)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Io(_)), "{e:?}");
    assert!(e.to_string().contains("certificate"), "{e}");

    let stranger = TestPki::new();
    let other_ca = CertificateDer::from_pem_slice(stranger.ca_pem.as_bytes()).unwrap();
    let untrusting = client_config(&[other_ca]).unwrap();
    let e = Client::connect_tls(gw.addr, "localhost", untrusting)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Io(_)), "{e:?}");

    // The gateway counts both (the client aborts with an alert), and keeps serving.
    failures_reach(&gw, 2).await;
    let p = trader
        .place(place("after-bad-tls", "005930"))
        .await
        .unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_plain_tcp_client_on_the_tls_port_is_dropped_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, files) = tls_gateway_config(&dir).await;
    let gw = start_gateway(cfg).await;
    let trader = tls_client(&gw, &files).await;

    // Raw frames where a ClientHello belongs: the handshake fails and the
    // socket is closed; no frame ever comes back.
    let mut plain = TcpStream::connect(gw.addr).await.unwrap();
    let login = Raw::encode(Frame::request(
        MsgType::Login,
        1,
        &LoginRequest {
            account_id: String::new(),
            token: token(ACCOUNT),
            ..Default::default()
        },
    ));
    plain.write_all(&login).await.unwrap();
    let got = read_until_closed(&mut plain).await;
    assert!(
        got.is_empty() || got[0] == 0x15,
        "only a TLS alert (0x15) may come back, got {got:02x?}"
    );

    // The gateway's own client, without TLS: a clean error, no hang.
    let client = Client::connect(gw.addr).await.unwrap();
    let r = within(client.login(ACCOUNT, &token(ACCOUNT))).await;
    assert!(matches!(r, Err(ClientError::Closed)), "{r:?}");

    failures_reach(&gw, 2).await;
    let p = trader.place(place("after-plain", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_cut_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, files) = tls_gateway_config(&dir).await;
    cfg.tls_handshake_timeout_ms = Duration::from_millis(500).into();
    // Make sure it is the handshake timer that fires, not the login timer.
    cfg.login_timeout_secs = Duration::from_secs(120).into();
    let gw = start_gateway(cfg).await;
    let trader = tls_client(&gw, &files).await;

    // One connection sends nothing; one sends the first bytes of a TLS
    // record header and stalls.
    let started = Instant::now();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut partial = TcpStream::connect(gw.addr).await.unwrap();
    partial.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let (a, b) = tokio::join!(
        read_until_closed(&mut silent),
        read_until_closed(&mut partial)
    );
    assert!(a.is_empty() && b.is_empty(), "{a:02x?} {b:02x?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    failures_reach(&gw, 2).await;
    // Their connection slots are free again; the trader is unaffected.
    within(async {
        while gw.stats.open_connections() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let p = trader.place(place("after-stall", "005930")).await.unwrap();
    assert_eq!(p.code, Code::Ok as i32);
    gw.stop().await.unwrap();
}
