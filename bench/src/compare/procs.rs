//! Child processes the comparison starts: `hts` services, the echo server, proxies.
//!
//! Every child is killed when its handle drops; its standard error goes to a
//! log file in the comparison's temp dir.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
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
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(" listening on ") {
                let _ = tx.send(line);
            }
        }
    });
    let service = |addr| Service {
        name: name.to_owned(),
        addr,
        child,
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
