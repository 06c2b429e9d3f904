//! Throwaway PostgreSQL clusters: initdb + pg_ctl on a free loopback port
//! in a temp dir, torn down on drop. As root, the server binaries run as
//! the `postgres` OS user (initdb refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Directory of the PostgreSQL server binaries: `HTS_PG_BINDIR`, else the
/// directory `initdb` on PATH resolves to, else /usr/lib/postgresql/*/bin.
pub fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("HTS_PG_BINDIR") {
        return dir.into();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("initdb");
            if candidate.exists() {
                if let Ok(real) = std::fs::canonicalize(&candidate) {
                    return real.parent().expect("bindir").to_path_buf();
                }
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (scripts/test.sh installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no PostgreSQL server binaries found")
}

/// Runs a PostgreSQL binary (as `postgres` when we are root).
fn pg_command(bin: &str, args: &[&str]) -> Output {
    let exe = bindir().join(bin);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.args(args).output().expect("run postgres binary")
}

fn must(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One PostgreSQL server.
pub struct PgServer {
    _dir: tempfile::TempDir,
    /// Its data directory.
    pub data: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
}

fn owned_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    if is_root() {
        must(
            Command::new("chown")
                .args(["postgres:", &dir.path().display().to_string()])
                .output()
                .expect("chown"),
            "chown",
        );
    }
    dir
}

const CONF: &str = "
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 64MB
fsync = on
synchronous_commit = on
wal_level = replica
max_wal_senders = 5
hot_standby = on
wal_keep_size = 256MB
";

impl PgServer {
    /// A new primary cluster, started.
    pub fn start() -> PgServer {
        let dir = owned_tempdir();
        let data = dir.path().join("data");
        let port = free_port();
        must(
            pg_command(
                "initdb",
                &[
                    "-D",
                    &data.display().to_string(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
            "initdb",
        );
        let server = PgServer {
            log: dir.path().join("server.log"),
            _dir: dir,
            data,
            port,
        };
        server.append_conf(&format!(
            "{CONF}port = {port}\nunix_socket_directories = '{}'\n",
            server._dir.path().display()
        ));
        server.start_again();
        server
    }

    /// A streaming standby of `primary` (pg_basebackup -R), started.
    pub fn standby_of(primary: &PgServer) -> PgServer {
        let dir = owned_tempdir();
        let data = dir.path().join("data");
        let port = free_port();
        must(
            pg_command(
                "pg_basebackup",
                &[
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "postgres",
                    "-D",
                    &data.display().to_string(),
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                ],
            ),
            "pg_basebackup",
        );
        let server = PgServer {
            log: dir.path().join("server.log"),
            _dir: dir,
            data,
            port,
        };
        server.append_conf(&format!(
            "port = {port}\nunix_socket_directories = '{}'\n\
             primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name=standby'\n",
            server._dir.path().display(),
            primary.port
        ));
        server.start_again();
        server
    }

    fn append_conf(&self, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("postgresql.conf");
        f.write_all(text.as_bytes()).expect("write conf");
    }

    /// Also listens on `addr` and lets clients of `cidr` in without a
    /// password (a network namespace's peer), then restarts so the new
    /// listen address takes effect.
    pub fn allow_network(&self, addr: &str, cidr: &str) {
        use std::io::Write;
        self.append_conf(&format!("listen_addresses = '127.0.0.1,{addr}'\n"));
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("pg_hba.conf"))
            .expect("pg_hba.conf");
        writeln!(hba, "host all all {cidr} trust").expect("write pg_hba.conf");
        self.restart();
    }

    /// Makes commits on this primary wait for the standby (synchronous
    /// replication) and reloads.
    pub fn require_sync_standby(&self) {
        self.append_conf("synchronous_standby_names = '*'\n");
        must(
            pg_command(
                "pg_ctl",
                &["-D", &self.data.display().to_string(), "reload"],
            ),
            "pg_ctl reload",
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub fn start_again(&self) {
        must(
            pg_command(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.display().to_string(),
                    "-l",
                    &self.log.display().to_string(),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ),
            "pg_ctl start",
        );
    }

    /// Stops the server (`mode`: fast or immediate).
    pub fn stop(&self, mode: &str) {
        must(
            pg_command(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.display().to_string(),
                    "-m",
                    mode,
                    "-w",
                    "stop",
                ],
            ),
            "pg_ctl stop",
        );
    }

    /// Restarts the server (fast shutdown: connections are cut).
    pub fn restart(&self) {
        must(
            pg_command(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.display().to_string(),
                    "-l",
                    &self.log.display().to_string(),
                    "-m",
                    "fast",
                    "-w",
                    "restart",
                ],
            ),
            "pg_ctl restart",
        );
    }

    /// Promotes a standby to primary and waits for it.
    pub fn promote(&self) {
        must(
            pg_command(
                "pg_ctl",
                &["-D", &self.data.display().to_string(), "-w", "promote"],
            ),
            "pg_ctl promote",
        );
    }

    /// A plain client connection (test assertions).
    pub async fn client(&self) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    return client;
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for postgres: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("cannot connect to {}: {e}", self.url()),
            }
        }
    }

    /// The server log (for failure messages).
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg_command(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

/// The order-store invariants every kill test checks: no request_id is
/// stored twice, and every ACCEPTED order has its HELD reservation of its
/// amount (orders and reservations in the same database).
pub async fn assert_orders_backed(db: &tokio_postgres::Client) {
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM (SELECT 1 FROM orders GROUP BY account_id, request_id \
             HAVING count(*) > 1) d"
        )
        .await,
        0,
        "a request stored twice"
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM orders o WHERE o.status = 'ACCEPTED' AND NOT EXISTS (
                SELECT 1 FROM reservations r WHERE r.reservation_id = o.reservation_id
                AND r.status = 'HELD' AND r.amount = o.price * o.quantity)"
        )
        .await,
        0,
        "an accepted order without its HELD reservation"
    );
}

/// `SELECT count(*) …` helper.
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}
