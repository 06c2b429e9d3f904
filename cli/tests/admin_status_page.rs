//! The gateway's status page (`GET /`) in headless Chromium (Debian's
//! `chromium`, installed by scripts/test.sh): the page's script fetches the
//! live backend table and renders it (checked with --dump-dom), and a
//! screenshot of it is a real, non-trivial PNG of the window size.

mod admin_support;
mod resilience_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use resilience_support::Cluster;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns stdout.
fn chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium (scripts/test.sh installs Debian's chromium package)");
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_the_live_backend_table() {
    let mut c = Cluster::start(&["", ""], &["--request-timeout-ms", "5000"]);
    let line = c
        .gateway
        .wait_for_line("hts gateway-admin listening on ", Duration::from_secs(30));
    let admin: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let url = format!("http://{admin}/");
    let dir = tempfile::tempdir().unwrap();

    // The DOM after the page's script ran: both backends, live status.
    let dom = chromium(
        &dir.path().join("profile-dom"),
        &url,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
    );
    for i in 0..2 {
        let backend = c.url(i);
        assert!(dom.contains(&backend), "{backend} not rendered:\n{dom}");
    }
    assert!(
        dom.contains(r#"<span id="ready" class="ready">ready</span>"#),
        "readiness not rendered:\n{dom}"
    );
    assert!(
        !dom.contains(r#"<span id="refreshes">0</span>"#),
        "the page never refreshed:\n{dom}"
    );
    assert!(
        dom.contains("<td class=\"l healthy\">healthy</td>"),
        "{dom}"
    );

    // A screenshot: a PNG of the window size with real content.
    let shot = dir.path().join("status.png");
    chromium(
        &dir.path().join("profile-shot"),
        &url,
        &[
            "--virtual-time-budget=5000".into(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // A blank page compresses to a couple of KiB; text and tables do not.
    assert!(
        png.len() > 10_000,
        "screenshot looks empty: {} bytes",
        png.len()
    );
}
