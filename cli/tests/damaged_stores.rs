//! Damaged stores are refused at start (issue 17): `hts demo` (and the
//! services it is made of) exits non-zero in well under 2 s with a message
//! naming the file and the cause, for a deleted, emptied, half-truncated,
//! page-corrupted or header-corrupted store, a read-only data directory, and
//! an account store swapped in from another installation. Also: the first
//! run creates the stores, a clean restart serves again, a PostgreSQL
//! database without the store (or paired with another account store) is
//! refused, and outbox rows left READY by a crash are published a grace
//! period after the restart instead of a recovery interval later.

mod durable_support;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use durable_support::pg::PgServer;
use durable_support::stack::{buy, order_service, Stack};
use support::Proc;

/// Longest a refused start may take.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

/// A data directory a demo initialised and stopped cleanly, with its WAL
/// checkpointed into the database files (so damaging a file damages data).
fn initialised_demo() -> PathBuf {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let data = dir.join("data");
    let data_str = data.display().to_string();
    let mut demo = Proc::spawn(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_str,
        "--request-timeout-ms",
        "5000",
    ]);
    demo.wait_for_line("Serving.", Duration::from_secs(60));
    demo.sigterm();
    assert_eq!(demo.wait_exit(Duration::from_secs(30)), Some(0));
    for file in ["accounts.db", "orders.db"] {
        let conn = rusqlite::Connection::open(data.join(file)).expect("open for checkpoint");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
        drop(conn);
        assert!(
            !data.join(format!("{file}-wal")).exists(),
            "{file}: WAL left"
        );
    }
    data
}

/// The template of [`initialised_demo`], made once per test binary.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(initialised_demo)
}

/// A copy of the template data directory to damage.
fn fresh_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    for entry in std::fs::read_dir(template()).expect("read template") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), data.join(entry.file_name())).expect("copy");
    }
    (dir, data)
}

/// Runs `hts demo` on `data` (through `wrapper`, if any) and returns its
/// output and how long it ran.
fn run_demo(wrapper: &[&str], data: &Path) -> (Output, Duration) {
    let hts = env!("CARGO_BIN_EXE_hts");
    let mut cmd = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(hts);
            c
        }
        None => Command::new(hts),
    };
    cmd.args([
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--no-sample",
        "--data-dir",
    ])
    .arg(data)
    .env("RUST_LOG", "warn")
    .env("HTS_JWT_SECRET", support::SECRET);
    let started = Instant::now();
    let output = cmd.output().expect("run hts demo");
    (output, started.elapsed())
}

/// Asserts the demo on `data` was refused quickly, naming `file` and every
/// one of `causes`.
fn assert_refused(wrapper: &[&str], data: &Path, file: &str, causes: &[&str]) {
    let (output, took) = run_demo(wrapper, data);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "must exit non-zero: {stdout}\n{stderr}"
    );
    assert!(
        took < REFUSED_WITHIN,
        "refused only after {took:?}: {stderr}"
    );
    let path = data.join(file).display().to_string();
    assert!(stderr.contains(&path), "names {path}: {stderr}");
    for cause in causes {
        assert!(
            stderr.contains(cause),
            "names the cause {cause:?}: {stderr}"
        );
    }
    assert!(
        !stdout.contains("listening on"),
        "nothing announced before the store was checked: {stdout}"
    );
    eprintln!("refused in {took:?}: {}", stderr.trim());
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open to damage");
    file.seek(SeekFrom::Start(offset)).expect("seek");
    file.write_all(bytes).expect("damage");
    file.sync_all().expect("sync");
}

#[test]
fn a_clean_restart_serves_again() {
    let (_dir, data) = fresh_copy();
    let data_str = data.display().to_string();
    let mut demo = Proc::spawn(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_str,
        "--request-timeout-ms",
        "5000",
    ]);
    let sample = demo.wait_for_line("Sample query", Duration::from_secs(60));
    assert!(sample.contains("code=OK"), "{sample}");
    assert!(
        !demo.output().contains("First run"),
        "an existing data directory is not a first run"
    );
    demo.sigterm();
    assert_eq!(demo.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn a_deleted_order_store_is_refused() {
    let (_dir, data) = fresh_copy();
    std::fs::remove_file(data.join("orders.db")).unwrap();
    assert_refused(&[], &data, "orders.db", &["does not exist", "--init"]);
    assert!(!data.join("orders.db").exists(), "no new store was created");
}

#[test]
fn an_emptied_order_store_is_refused() {
    let (_dir, data) = fresh_copy();
    std::fs::write(data.join("orders.db"), b"").unwrap();
    assert_refused(&[], &data, "orders.db", &["empty", "0 bytes", "--init"]);
}

#[test]
fn a_half_truncated_order_store_is_refused() {
    let (_dir, data) = fresh_copy();
    let path = data.join("orders.db");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused(&[], &data, "orders.db", &["damaged", "malformed"]);
}

#[test]
fn corrupted_pages_in_the_account_store_are_refused() {
    let (_dir, data) = fresh_copy();
    let path = data.join("accounts.db");
    let len = std::fs::metadata(&path).unwrap().len();
    overwrite(&path, len / 2, &[0xA5; 8192]);
    assert_refused(&[], &data, "accounts.db", &["damaged"]);
}

#[test]
fn a_corrupt_header_is_refused() {
    let (_dir, data) = fresh_copy();
    overwrite(
        &data.join("orders.db"),
        0,
        b"this is no sqlite header at all!",
    );
    assert_refused(
        &[],
        &data,
        "orders.db",
        &["damaged", "file is not a database"],
    );
}

#[test]
fn a_read_only_data_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, data) = fresh_copy();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(
        data.parent().unwrap(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // Root writes anywhere: run as nobody then.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let wrapper: &[&str] = if root {
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]
    } else {
        &[]
    };
    assert_refused(wrapper, &data, "accounts.db", &["readonly database"]);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn an_account_store_from_another_installation_is_refused() {
    let other = initialised_demo();
    let (_dir, data) = fresh_copy();
    std::fs::copy(other.join("accounts.db"), data.join("accounts.db")).unwrap();
    assert_refused(
        &[],
        &data,
        "orders.db",
        &["was paired with account store", "swapped or restored"],
    );
    let _ = std::fs::remove_dir_all(other.parent().unwrap());
}

#[test]
fn the_two_stores_swapped_are_refused() {
    let (_dir, data) = fresh_copy();
    std::fs::rename(data.join("orders.db"), data.join("tmp.db")).unwrap();
    std::fs::rename(data.join("accounts.db"), data.join("orders.db")).unwrap();
    std::fs::rename(data.join("tmp.db"), data.join("accounts.db")).unwrap();
    assert_refused(
        &[],
        &data,
        "accounts.db",
        &["holds an order-store, not an account-store"],
    );
}

/// `hts account-service` / `hts order-service` on PostgreSQL: a database
/// without the store is refused unless `--init`; an order store paired with
/// one account store refuses another one (a fresh database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_check_their_identity() {
    let pg = PgServer::start();
    let db = pg.client().await;
    for name in ["accounts_a", "accounts_b", "orders"] {
        db.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
    let base = pg.url();
    let url = |name: &str| {
        let (server, _) = base.rsplit_once('/').expect("url with a database");
        format!("{server}/{name}")
    };
    let hts = env!("CARGO_BIN_EXE_hts");

    let started = Instant::now();
    let refused = Command::new(hts)
        .args(["account-service", "--listen", "127.0.0.1:0", "--store"])
        .arg(url("accounts_a"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("accounts_a") && stderr.contains("holds no account-store"),
        "{stderr}"
    );

    let accounts_a = Proc::spawn(&[
        "account-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &url("accounts_a"),
        "--seed-demo",
    ]);
    let mut orders = order_service(&url("orders"), &accounts_a.url(), &[]);
    orders.sigterm();
    assert_eq!(orders.wait_exit(Duration::from_secs(30)), Some(0));
    drop(accounts_a);

    let accounts_b = Proc::spawn(&[
        "account-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &url("accounts_b"),
    ]);
    let started = Instant::now();
    let refused = Command::new(hts)
        .args(["order-service", "--listen", "127.0.0.1:0", "--store"])
        .arg(url("orders"))
        .arg("--account-service")
        .arg(accounts_b.url())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("/orders") && stderr.contains("was paired with account store"),
        "{stderr}"
    );
    let count: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'orders'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

/// A crash between commit and publish: the restarted order service
/// publishes the READY row a grace period after its start, not a recovery
/// interval (300 s by default) later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_rows_left_ready_by_a_crash_are_published_soon_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("orders.db").display());
    let events = dir.path().join("events.jsonl");
    let events_str = events.display().to_string();
    let mut stack = Stack::start(
        &store,
        None,
        1,
        &[
            "--events-log",
            &events_str,
            "--outbox-grace-ms",
            "2000",
            "--fault-exit-after-commit",
        ],
    );
    let client = stack.client("ACC-0021").await;
    let _ = client.place(buy("crash-outbox-1")).await;
    assert_eq!(stack.orders[0].wait_exit(Duration::from_secs(30)), Some(86));
    let published = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .contains("crash-outbox-1")
    };
    assert!(!published(), "committed, not published before the crash");

    let restarted_at = Instant::now();
    let _restarted = order_service(
        &store,
        &stack.account.url(),
        &["--events-log", &events_str, "--outbox-grace-ms", "2000"],
    );
    while !published() {
        assert!(
            restarted_at.elapsed() < Duration::from_secs(15),
            "READY row not published within 15 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("published {:?} after the restart", restarted_at.elapsed());
}

/// A PostgreSQL server that cannot be reached is reported at once, with
/// the connection's own error, not after the 10 s retry budget of serving.
#[test]
fn an_unreachable_postgres_is_reported_at_once() {
    let port = durable_support::pg::free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/hts");
    for role in ["account-service", "order-service"] {
        let started = Instant::now();
        let extra: &[&str] = if role == "order-service" {
            &["--account-service", "http://127.0.0.1:9"]
        } else {
            &[]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_hts"))
            .args([role, "--listen", "127.0.0.1:0", "--store", &url])
            .args(extra)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{role}: {stderr}");
        assert!(took < REFUSED_WITHIN, "{role}: took {took:?}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}/hts"))
                && stderr.contains("Connection refused"),
            "{role}: {stderr}"
        );
        eprintln!("{role} refused in {took:?}: {}", stderr.trim());
    }
}
