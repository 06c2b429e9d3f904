//! Test harness: starts real `hts` processes on loopback ports.
//!
//! Every service is started with `--listen 127.0.0.1:0` and the harness reads
//! the `hts <role> listening on ADDR` line from its standard output, so tests
//! never race for ports. Processes are killed when their handle drops.

#![allow(dead_code)]

use hts_client::Client;
use hts_proto::v1::Code;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The JWT secret every test cluster uses.
pub const SECRET: &str = "test-secret-for-integration-tests-only";

/// A running `hts` process.
pub struct Proc {
    child: Child,
    /// The address it announced.
    pub addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Everything printed so far (standard output; standard error too when
    /// spawned with [`Proc::spawn_logged`]).
    output: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `hts ARGS` and waits for its listening line.
    pub fn spawn(args: &[impl AsRef<std::ffi::OsStr>]) -> Proc {
        Self::spawn_with_env(args, &[])
    }

    /// Spawns `hts ARGS` with extra environment and waits for its listening line.
    pub fn spawn_with_env(args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Proc {
        Self::spawn_inner(&[], args, env, false)
    }

    /// Like [`Proc::spawn_with_env`], but standard error is captured too
    /// (see [`Proc::output`]) instead of passed through.
    pub fn spawn_logged(args: &[impl AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Proc {
        Self::spawn_inner(&[], args, env, true)
    }

    /// Spawns `WRAPPER… hts ARGS` (e.g. `ip netns exec NS`), which must
    /// exec `hts` in place so the child's pid is the service's, and waits
    /// for its listening line.
    pub fn spawn_wrapped(
        wrapper: &[&str],
        args: &[impl AsRef<std::ffi::OsStr>],
        env: &[(&str, &str)],
    ) -> Proc {
        Self::spawn_inner(wrapper, args, env, false)
    }

    fn spawn_inner(
        wrapper: &[&str],
        args: &[impl AsRef<std::ffi::OsStr>],
        env: &[(&str, &str)],
        capture_stderr: bool,
    ) -> Proc {
        let hts = env!("CARGO_BIN_EXE_hts");
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(hts);
                c
            }
            None => Command::new(hts),
        };
        cmd.args(args)
            .env("HTS_JWT_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if capture_stderr {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hts");
        let stdout = child.stdout.take().expect("stdout piped");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                push_line(&out, &line);
                // Keep draining (and recording) after the receiver is gone.
                let _ = tx.send(line);
            }
        });
        if let Some(stderr) = child.stderr.take() {
            let out = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    push_line(&out, &line);
                }
            });
        }
        let mut proc = Proc {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines: rx,
            output,
        };
        let line = proc.wait_for_line(" listening on ", Duration::from_secs(60));
        let addr = line.rsplit(' ').next().unwrap();
        proc.addr = addr.parse().expect("listening address");
        proc
    }

    /// Waits until the process prints a line containing `needle`; returns it.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!("process did not print {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Everything the process printed so far (see [`Proc::spawn_logged`]).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The gRPC URL of this process.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `HUP`, `USR1`, ...).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident set size in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS line")
    }

    /// Waits for the process to exit, up to `timeout`; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if std::time::Instant::now() > deadline {
                panic!("process did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn push_line(out: &Mutex<String>, line: &str) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    out.push_str(line);
    out.push('\n');
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole system: account service, order services and gateway, each its own process.
pub struct Cluster {
    /// Holds the SQLite files.
    pub dir: tempfile::TempDir,
    /// The account service.
    pub account: Proc,
    /// The order-service backends.
    pub orders: Vec<Proc>,
    /// The gateway.
    pub gateway: Proc,
}

impl Cluster {
    /// Starts an account service (seeded), `backends` order services sharing
    /// one store, and a gateway with `gateway_args` appended.
    ///
    /// The gateway gets a 5 s request deadline unless `gateway_args` sets one:
    /// these are functional tests of debug builds on a shared machine, where a
    /// durable SQLite commit can take longer than the 50 ms production default.
    /// Deadline behaviour itself is tested with explicit timeouts.
    pub fn start(backends: usize, gateway_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let account_store = format!("sqlite:{}", dir.path().join("accounts.db").display());
        let account = Proc::spawn(&[
            "account-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            &account_store,
            "--seed-demo",
        ]);
        let order_store = format!("sqlite:{}", dir.path().join("orders.db").display());
        let account_url = account.url();
        let orders: Vec<Proc> = (0..backends)
            .map(|_| {
                Proc::spawn(&[
                    "order-service",
                    "--init",
                    "--listen",
                    "127.0.0.1:0",
                    "--store",
                    &order_store,
                    "--account-service",
                    &account_url,
                ])
            })
            .collect();
        let mut args: Vec<String> = vec![
            "gateway".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
        ];
        for o in &orders {
            args.push("--backend".into());
            args.push(o.url());
        }
        if !gateway_args.contains(&"--request-timeout-ms") {
            args.push("--request-timeout-ms".into());
            args.push("5000".into());
        }
        args.extend(gateway_args.iter().map(|s| s.to_string()));
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let gateway = Proc::spawn(&arg_refs);
        Cluster {
            dir,
            account,
            orders,
            gateway,
        }
    }

    /// Path of the shared order store.
    pub fn order_db(&self) -> PathBuf {
        self.dir.path().join("orders.db")
    }

    /// A logged-in client for `account`.
    pub async fn client(&self, account: &str) -> Client {
        login(self.gateway.addr, account).await
    }

    /// An account-service client.
    pub fn accounts(&self) -> hts_account_client::AccountClient {
        hts_account_client::AccountClient::connect_lazy(&self.account.url())
            .expect("account client")
    }

    /// (available, reserved) of one asset of one account.
    pub async fn balance(&self, account: &str, asset: &str) -> (i64, i64) {
        let r = self
            .accounts()
            .get_account(account)
            .await
            .expect("get_account");
        assert!(r.found, "account {account} not found");
        r.balances
            .iter()
            .find(|b| b.asset == asset)
            .map(|b| (b.available, b.reserved))
            .unwrap_or((0, 0))
    }
}

/// A token for `account` signed with the cluster secret.
pub fn token(account: &str) -> String {
    hts_gateway::auth::mint_token(SECRET.as_bytes(), account, Duration::from_secs(600)).unwrap()
}

/// Connects to `addr` and logs in as `account`.
pub async fn login(addr: SocketAddr, account: &str) -> Client {
    let client = Client::connect(addr).await.expect("connect");
    let r = client.login(account, &token(account)).await.expect("login");
    assert_eq!(r.code, Code::Ok as i32, "login failed: {}", r.message);
    client
}

/// Number of order rows for (account, request_id) in an SQLite order store.
pub fn count_orders(db: &Path, account: &str, request_id: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open order db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE account_id = ?1 AND request_id = ?2",
        [account, request_id],
        |r| r.get(0),
    )
    .expect("count orders")
}

/// All request ids stored for `account`.
pub fn stored_request_ids(db: &Path, account: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open order db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT request_id FROM orders WHERE account_id = ?1")
        .unwrap();
    let rows = stmt
        .query_map([account], |r| r.get::<_, String>(0))
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}
