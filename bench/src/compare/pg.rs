//! A throwaway PostgreSQL cluster for the durable-store comparison.
//!
//! `initdb` + `pg_ctl start` on a free loopback port in a temp dir, stopped
//! (`pg_ctl -m immediate stop`) when the handle drops. As root the server
//! binaries run as the `postgres` OS user through `runuser -u postgres --`
//! (initdb refuses root). Settings are the durable ones (`fsync`,
//! `synchronous_commit` on): the comparison is about durable orders.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context};

use super::procs::free_addr;

/// Server settings appended to `postgresql.conf`.
const CONF: &str = "
listen_addresses = '127.0.0.1'
max_connections = 300
shared_buffers = 128MB
fsync = on
synchronous_commit = on
";

/// Cumulative counters of a cluster, for costs per order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgTotals {
    /// WAL position, bytes.
    pub wal_bytes: u64,
    /// Rows inserted, updated and deleted in every user table.
    pub rows: u64,
    /// Rows of the `orders` table.
    pub orders: u64,
}

/// What [`PgCluster::totals`] asks.
const TOTALS_SQL: &str = "SELECT (pg_current_wal_lsn() - '0/0')::bigint, \
    (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables)::bigint, \
    (SELECT count(*) FROM orders)";

/// Parses the `a|b|c` line `psql -At` prints for [`TOTALS_SQL`].
pub fn parse_totals(line: &str) -> Option<PgTotals> {
    let mut f = line.trim().split('|').map(|v| v.trim().parse::<u64>());
    let totals = PgTotals {
        wal_bytes: f.next()?.ok()?,
        rows: f.next()?.ok()?,
        orders: f.next()?.ok()?,
    };
    f.next().is_none().then_some(totals)
}

/// A running PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    bindir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

/// Directory of the server binaries: `bindir` if given, else the newest
/// `/usr/lib/postgresql/*/bin` holding `initdb`.
pub fn find_bindir(bindir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = bindir {
        return Ok(dir.to_path_buf());
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server binaries not found in /usr/lib/postgresql (pass --pg-bindir)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found
        .pop()
        .context("no initdb under /usr/lib/postgresql/*/bin (pass --pg-bindir)")
}

fn must(out: Output, what: &str) -> anyhow::Result<()> {
    if !out.status.success() {
        bail!(
            "{what} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl PgCluster {
    /// Creates and starts a cluster under a new temp dir.
    pub fn start(bindir: PathBuf) -> anyhow::Result<PgCluster> {
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = tempfile::Builder::new()
            .prefix("hts-bench-pg")
            .tempdir()
            .context("creating the PostgreSQL temp dir")?;
        if as_postgres {
            must(
                Command::new("chown")
                    .arg("postgres:")
                    .arg(dir.path())
                    .output()
                    .context("chown")?,
                "chown postgres: of the PostgreSQL temp dir",
            )?;
        }
        let port = free_addr()?.port();
        let cluster = PgCluster {
            bindir,
            data: dir.path().join("data"),
            log: dir.path().join("server.log"),
            port,
            as_postgres,
            _dir: dir,
        };
        let data = cluster.data.display().to_string();
        must(
            cluster.pg(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            )?,
            "initdb",
        )?;
        let conf = cluster.data.join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        write!(
            f,
            "{CONF}port = {port}\nunix_socket_directories = '{}'\n",
            cluster._dir.path().display()
        )?;
        let log = cluster.log.display().to_string();
        must(
            cluster.pg(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-w", "-t", "60", "start"],
            )?,
            "pg_ctl start",
        )?;
        Ok(cluster)
    }

    fn pg(&self, bin: &str, args: &[&str]) -> anyhow::Result<Output> {
        let exe = self.bindir.join(bin);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .output()
            .with_context(|| format!("running {}", exe.display()))
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// WAL position, rows written and orders stored so far (through `psql`).
    pub fn totals(&self) -> anyhow::Result<PgTotals> {
        let port = self.port.to_string();
        let out = Command::new(self.bindir.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-At",
                "-c",
                TOTALS_SQL,
            ])
            .output()
            .context("running psql")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        parse_totals(&text).with_context(|| format!("unexpected psql output {text:?}"))
    }

    /// The postmaster's pid (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The postmaster and every process it forked (backends, WAL writer, ...).
    pub fn pids(&self) -> Vec<u32> {
        let Some(root) = self.postmaster_pid() else {
            return Vec::new();
        };
        let mut pids = vec![root];
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if parent_pid(&stat) == Some(root) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// The parent pid field of a `/proc/<pid>/stat` line.
pub fn parent_pid(stat: &str) -> Option<u32> {
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data.display().to_string();
        let _ = self.pg("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

#[cfg(test)]
mod tests {
    use super::{parent_pid, parse_totals, PgTotals};

    #[test]
    fn totals_line() {
        assert_eq!(
            parse_totals("123|45|6\n"),
            Some(PgTotals {
                wal_bytes: 123,
                rows: 45,
                orders: 6
            })
        );
        assert_eq!(parse_totals("1|2"), None);
        assert_eq!(parse_totals("1|x|3"), None);
    }

    #[test]
    fn parent_pid_of_stat_line() {
        assert_eq!(
            parent_pid("123 (postgres: wal (x)) S 77 123 123 0"),
            Some(77)
        );
        assert_eq!(parent_pid("garbage"), None);
    }
}
