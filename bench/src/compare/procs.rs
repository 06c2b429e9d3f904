//! Child processes the comparison starts: `hts` services, the echo server, proxies.
//!
//! Every child is killed when its handle drops; its standard error goes to a
//! log file in the comparison's temp dir.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a child may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running child process and the address it serves on.
#[derive(Debug)]
pub struct Service {
    /// Short name for logs and reports.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    /// Standard output lines after the announcement (announced children only).
    lines: Option<Mutex<mpsc::Receiver<String>>>,
}

impl Service {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://ADDR`, for gRPC clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends `signal` to the child, then waits up to `timeout` for the next
    /// standard output line starting with `prefix` and returns the rest of
    /// it (older lines are skipped). `None` if nothing came in time.
    pub fn signal_and_read(&self, signal: i32, prefix: &str, timeout: Duration) -> Option<String> {
        let rx = self.lines.as_ref()?.lock().ok()?;
        while rx.try_recv().is_ok() {}
        let deadline = Instant::now() + timeout;
        // A signal sent before the child installs its handler would kill it
        // (SIGUSR1's default action), and the announcement comes first.
        while !catches(self.pid(), signal) {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = libc::pid_t::try_from(self.pid()).ok()?;
        // SAFETY: kill(2) with a pid of our own child and a plain signal number.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return None;
        }
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let line = rx.recv_timeout(left).ok()?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
        }
    }
}

/// Whether `pid` has a handler installed for `signal` (`SigCgt` of /proc/PID/status).
pub fn catches(pid: u32, signal: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    sig_caught(&status, signal)
}

/// Whether the `SigCgt:` mask of a /proc status text has `signal`'s bit.
pub fn sig_caught(status: &str, signal: i32) -> bool {
    let Some(mask) = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
    else {
        return false;
    };
    (1..=64).contains(&signal) && mask & (1u64 << (signal - 1)) != 0
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(dir: &Path, name: &str) -> anyhow::Result<File> {
    let path = dir.join(format!("{name}.log"));
    File::create(&path).with_context(|| format!("creating {}", path.display()))
}

/// Spawns `program ARGS`, which prints a line ending in `listening on ADDR`
/// once ready (the `hts` services and `hts-bench echo-server` do).
pub fn spawn_announced(
    name: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    log_dir: &Path,
) -> anyhow::Result<Service> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(log_dir, name)?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {name}: {} {}", program.display(), args.join(" ")))?;
    let stdout = child.stdout.take().context("child stdout is piped")?;
    let (tx, rx) = mpsc::channel();
    let (line_tx, line_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !announced && line.contains(" listening on ") {
                announced = true;
                let _ = tx.send(line);
            } else {
                // Nobody may be listening; the lines are then dropped.
                let _ = line_tx.send(line);
            }
        }
    });
    let service = |addr| Service {
        name: name.to_owned(),
        addr,
        child,
        lines: Some(Mutex::new(line_rx)),
    };
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) => {
            let addr = line
                .rsplit(' ')
                .next()
                .and_then(|a| a.parse().ok())
                .with_context(|| format!("{name} announced an unreadable address: {line:?}"))?;
            Ok(service(addr))
        }
        Err(_) => {
            // Dropping the service kills the child.
            drop(service(SocketAddr::from(([127, 0, 0, 1], 0))));
            bail!(
                "{name} did not announce its address within {START_TIMEOUT:?} (see {}/{name}.log)",
                log_dir.display()
            )
        }
    }
}

/// Spawns `program ARGS` that listens on `addr` and waits until it accepts connections.
pub fn spawn_listening(
    name: &str,
    program: &Path,
    args: &[&str],
    addr: SocketAddr,
    log_dir: &Path,
) -> anyhow::Result<Service> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file(log_dir, &format!("{name}.out"))?)
        .stderr(log_file(log_dir, name)?)
        .spawn()
        .with_context(|| format!("starting {name}: {} (is it installed?)", program.display()))?;
    let mut service = Service {
        name: name.to_owned(),
        addr,
        child,
        lines: None,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(service);
        }
        if let Some(status) = service.child.try_wait()? {
            bail!(
                "{name} exited with {status} (see {}/{name}.log)",
                log_dir.display()
            );
        }
        if Instant::now() > deadline {
            bail!("{name} did not listen on {addr} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

#[cfg(test)]
mod tests {
    use super::sig_caught;

    #[test]
    fn reads_the_caught_signal_mask() {
        // Bit 9 (SIGUSR1 = 10) and bit 1 (SIGINT = 2).
        let status = "Name:\thts\nSigCgt:\t0000000000000202\n";
        assert!(sig_caught(status, 10));
        assert!(sig_caught(status, 2));
        assert!(!sig_caught(status, 12));
        assert!(!sig_caught("Name: x\n", 10));
    }
}
