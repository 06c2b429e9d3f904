//! Security properties of the real `hts` processes: secrets never reach the
//! logs (even at debug level), the admin endpoint is never exposed to the
//! network without its token, the client commands speak TLS to a TLS
//! gateway, and clients that flood big frames without reading cannot make
//! the gateway's memory grow beyond its per-connection bound.

mod admin_support;
#[path = "../../gateway/tests/support/pki.rs"]
mod pki;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use hts_gateway::frame::{Frame, MsgType};
use hts_gateway::FrameCodec;
use hts_proto::v1::{Code, Heartbeat, LoginRequest, LoginResponse};
use prost::Message;
use support::{login, token, Cluster, Proc, SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

/// Runs `hts ARGS` to completion (killed after 60 s); returns (exit code,
/// stdout, stderr).
fn run_hts(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(env!("CARGO_BIN_EXE_hts")).args(args);
    cmd.env_remove("HTS_ADMIN_TOKEN").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hts");
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 124, "hts {args:?} did not finish within 60 s");
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sqlite(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite:{}", dir.path().join(name).display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_even_at_debug_level() {
    const JWT_SECRET: &str = "jwt-secret-never-logged-5d1c9e";
    const ADMIN_TOKEN: &str = "admin-token-never-logged-8e2f41";
    const BAD_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.bogus-token-never-logged-7a3b.c2ln";
    const WRONG_ADMIN: &str = "wrong-admin-token-never-logged-19c4";
    let dir = tempfile::tempdir().unwrap();
    let debug = [("RUST_LOG", "debug"), ("HTS_JWT_SECRET", JWT_SECRET)];
    let account = Proc::spawn(&[
        "account-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &sqlite(&dir, "accounts.db"),
        "--seed-demo",
    ]);
    let mut order = Proc::spawn_logged(
        &[
            "order-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &sqlite(&dir, "orders.db"),
            "--account-service",
            &account.url(),
        ],
        &debug,
    );
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut gateway = Proc::spawn_logged(
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--backend",
            &order.url(),
            "--request-timeout-ms",
            "5000",
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
        &debug,
    );
    let admin: std::net::SocketAddr = gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // A full session with a valid token, failed logins, admin calls with the
    // right and a wrong token, and a configuration dump.
    let jwt = hts_gateway::mint_token(JWT_SECRET.as_bytes(), "ACC-0001", Duration::from_secs(600))
        .unwrap();
    let client = hts_client::Client::connect(gateway.addr).await.unwrap();
    for bad in [BAD_TOKEN, "not-a-jwt-never-logged-0b7e"] {
        let r = client.login("ACC-0001", bad).await.unwrap();
        assert_eq!(r.code, Code::Unauthenticated as i32);
    }
    let r = client.login("ACC-0002", &jwt).await.unwrap();
    assert_eq!(r.code, Code::Unauthenticated as i32, "account mismatch");
    let r = client.login("ACC-0001", &jwt).await.unwrap();
    assert_eq!(r.code, Code::Ok as i32, "{r:?}");
    let placed = client
        .place(hts_proto::v1::PlaceOrderRequest {
            request_id: "secret-test-1".into(),
            account_id: String::new(),
            symbol: "005930".into(),
            side: 1,
            order_type: 1,
            price: 10,
            quantity: 1,
        })
        .await
        .unwrap();
    assert_eq!(placed.code, Code::Ok as i32, "{placed:?}");
    let r = admin_support::http(admin, "POST", "/admin/reload", Some(WRONG_ADMIN), None);
    assert_eq!(r.status, 401);
    let r = admin_support::http(
        admin,
        "POST",
        "/admin/backends/999/drain",
        Some(ADMIN_TOKEN),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let cfg = admin_support::get(admin, "/admin/config");
    assert_eq!(cfg.status, 200);
    gateway.signal("USR1");
    gateway.wait_for_line("hts gateway stats ", Duration::from_secs(30));
    drop(client);

    gateway.sigterm();
    assert_eq!(gateway.wait_exit(Duration::from_secs(30)), Some(0));
    order.sigterm();
    order.wait_exit(Duration::from_secs(30));
    // Give the pipe readers a moment to take the last lines.
    std::thread::sleep(Duration::from_millis(200));
    let logs = [
        ("gateway", gateway.output() + &cfg.body),
        ("order-service", order.output()),
    ];
    let (_, gateway_log) = &logs[0];
    // The logs are really at debug level and cover the login path.
    assert!(gateway_log.contains("DEBUG"), "{gateway_log}");
    assert!(gateway_log.contains("login failed"), "{gateway_log}");
    assert!(gateway_log.contains("ACC-0001"), "{gateway_log}");
    let signature = jwt.rsplit('.').next().unwrap();
    for (who, log) in &logs {
        for (what, secret) in [
            ("JWT secret", JWT_SECRET),
            ("admin token", ADMIN_TOKEN),
            ("wrong admin token", WRONG_ADMIN),
            ("client JWT", jwt.as_str()),
            ("client JWT signature", signature),
            ("rejected token", "bogus-token-never-logged"),
            ("rejected token", "not-a-jwt-never-logged"),
        ] {
            assert!(!log.contains(secret), "{who} logged the {what}");
        }
    }
}

#[test]
fn admin_endpoint_without_a_token_is_refused_off_loopback() {
    let backend = ["--backend", "http://127.0.0.1:1"];
    for addr in ["0.0.0.0:0", "127.0.0.1:0"] {
        let mut args = vec!["gateway", "--listen", "127.0.0.1:0", "--admin-listen", addr];
        args.extend_from_slice(&backend);
        if addr.starts_with("127.") {
            // Loopback without a token: starts (mutations stay refused).
            let p = Proc::spawn_with_env(&args, &[]);
            drop(p);
            continue;
        }
        let (code, stdout, stderr) = run_hts(&args, &[("HTS_JWT_SECRET", SECRET)]);
        assert_ne!(code, 0, "{stdout}{stderr}");
        assert!(
            stderr.contains("refusing to serve the admin endpoint on 0.0.0.0"),
            "{stderr}"
        );
        assert!(
            !stdout.contains("listening on"),
            "nothing may listen: {stdout}"
        );
    }
    // With a token, any address is fine.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "t0ken\n").unwrap();
    let mut p = Proc::spawn(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "0.0.0.0:0",
        "--admin-token-file",
        token_file.to_str().unwrap(),
        "--backend",
        "http://127.0.0.1:1",
    ]);
    p.wait_for_line(
        "hts gateway-admin listening on 0.0.0.0:",
        Duration::from_secs(30),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_speak_tls_to_a_tls_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let files = pki::TestPki::new().write(dir.path());
    let (cert, key, ca) = (
        files.cert.to_str().unwrap(),
        files.key.to_str().unwrap(),
        files.ca.to_str().unwrap(),
    );
    let cluster = Cluster::start(1, &["--tls-cert", cert, "--tls-key", key]);
    let addr = cluster.gateway.addr.to_string();
    let env = [("HTS_JWT_SECRET", SECRET)];
    let order = [
        "--symbol", "005930", "--side", "buy", "--price", "10", "--qty", "1",
    ];

    let mut args = vec![
        "place",
        "--addr",
        &addr,
        "--account",
        "ACC-0001",
        "--tls-ca",
        ca,
    ];
    args.extend_from_slice(&order);
    let (code, out, err) = run_hts(&args, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("code=OK"), "{out}");
    let order_id = out
        .lines()
        .find_map(|l| l.strip_prefix("order_id="))
        .unwrap()
        .to_owned();

    let query = [
        "query",
        "--addr",
        &addr,
        "--account",
        "ACC-0001",
        "--tls-ca",
        ca,
        "--tls-server-name",
        "localhost",
        "--order-id",
        &order_id,
    ];
    let (code, out, err) = run_hts(&query, &env);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("status=ACCEPTED"), "{out}");

    // Without --tls-ca the command cannot talk to the TLS listener.
    let mut plain = vec!["place", "--addr", &addr, "--account", "ACC-0001"];
    plain.extend_from_slice(&order);
    let (code, out, err) = run_hts(&plain, &env);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("connection closed"), "{err}");
    // A name the certificate does not carry is refused by the client.
    let mut wrong = vec![
        "place",
        "--addr",
        &addr,
        "--account",
        "ACC-0001",
        "--tls-ca",
        ca,
        "--tls-server-name",
        "gateway.example",
    ];
    wrong.extend_from_slice(&order);
    let (code, _, err) = run_hts(&wrong, &env);
    assert_ne!(code, 0);
    assert!(err.contains("certificate"), "{err}");

    // A bad certificate path stops the gateway at start-up with a clear error.
    let (code, _, err) = run_hts(
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--backend",
            "http://127.0.0.1:1",
            "--tls-cert",
            "/nonexistent/gw.crt",
            "--tls-key",
            key,
        ],
        &env,
    );
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/gw.crt"), "{err}");
    let (code, _, err) = run_hts(
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--backend",
            "http://127.0.0.1:1",
            "--tls-cert",
            cert,
        ],
        &env,
    );
    assert_ne!(code, 0);
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}

/// A logged-in raw connection.
async fn raw_login(addr: std::net::SocketAddr, account: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = BytesMut::new();
    let req = LoginRequest {
        account_id: String::new(),
        token: token(account),
        ..Default::default()
    };
    FrameCodec::default()
        .encode(Frame::request(MsgType::Login, 1, &req), &mut buf)
        .unwrap();
    s.write_all(&buf).await.unwrap();
    let mut inbuf = BytesMut::new();
    let frame = loop {
        if let Some(f) = FrameCodec::default().decode(&mut inbuf).unwrap() {
            break f;
        }
        assert!(s.read_buf(&mut inbuf).await.unwrap() > 0, "closed");
    };
    let r: LoginResponse = frame.decode_body().unwrap();
    assert_eq!(r.code, Code::Ok as i32, "{r:?}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_flooding_big_frames_without_reading_cannot_grow_gateway_memory() {
    const FLOODERS: usize = 8;
    const FLOOD_FOR: Duration = Duration::from_secs(3);
    // Per connection at most 4 GiB of writes, whatever happens (bounded loop).
    const MAX_BYTES: usize = 4 << 30;
    let cluster = Cluster::start(1, &[]);
    let trader = login(cluster.gateway.addr, "ACC-0001").await;
    let before = cluster.gateway.rss_kib();

    // HEARTBEATs padded to ~60 KiB (unknown field 15 keeps them valid):
    // the gateway echoes each one, so a client that never reads makes it
    // hold answers as large as its requests.
    let mut body = BytesMut::new();
    Heartbeat {
        sent_at_unix_nanos: 1,
    }
    .encode(&mut body)
    .unwrap();
    body.put_u8((15 << 3) | 2);
    prost::encoding::encode_varint(60 * 1024, &mut body);
    body.put_bytes(b'x', 60 * 1024);
    let mut frame = BytesMut::new();
    FrameCodec::default()
        .encode(
            Frame {
                msg_type: MsgType::Heartbeat.as_u16(),
                flags: 0,
                correlation_id: 1,
                body: body.freeze(),
            },
            &mut frame,
        )
        .unwrap();
    let frame = frame.freeze();
    let mut flooders = Vec::new();
    for i in 0..FLOODERS {
        let mut s = raw_login(cluster.gateway.addr, &format!("ACC-{:04}", 20 + i)).await;
        let frame = frame.clone();
        flooders.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + FLOOD_FOR;
            let mut written = 0usize;
            while written < MAX_BYTES {
                match tokio::time::timeout_at(deadline, s.write_all(&frame)).await {
                    Ok(Ok(())) => written += frame.len(),
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            (s, written)
        }));
    }
    // The trader keeps trading during the flood.
    let started = Instant::now();
    let mut placed = 0;
    while started.elapsed() < FLOOD_FOR {
        let r = trader
            .place(hts_proto::v1::PlaceOrderRequest {
                request_id: format!("flood-{placed}"),
                account_id: String::new(),
                symbol: "005930".into(),
                side: 1,
                order_type: 1,
                price: 1,
                quantity: 1,
            })
            .await
            .unwrap();
        assert_eq!(r.code, Code::Ok as i32, "{r:?}");
        placed += 1;
    }
    let mut held = Vec::new();
    let mut total = 0;
    for f in flooders {
        let (s, written) = f.await.unwrap();
        total += written;
        held.push(s);
    }
    // Measured while every flooder's connection is still open and stuck.
    let after = cluster.gateway.rss_kib();
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    println!(
        "{FLOODERS} flooders wrote {:.1} MiB in {FLOOD_FOR:?} without reading; \
         gateway RSS {before} KiB -> {after} KiB (+{growth_mib:.1} MiB); \
         the trader placed {placed} orders meanwhile",
        total as f64 / (1024.0 * 1024.0)
    );
    assert!(placed > 0);
    // Per connection the gateway holds at most ~1 MiB of frames in flight
    // plus its read and write buffers: 8 connections stay far below 64 MiB.
    // Counting requests alone (256 × 60 KiB) would allow ~120 MiB here.
    assert!(growth_mib < 64.0, "gateway RSS grew {growth_mib:.1} MiB");
    drop(held);
}
