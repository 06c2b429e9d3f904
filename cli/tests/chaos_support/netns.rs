//! A Linux network namespace joined to the host by a veth pair on a
//! private /30, made by the test itself and removed on drop. A process
//! started inside it ([`NetNs::wrapper`]) reaches the host only through the
//! veth; [`NetNs::partition`] takes the namespace's end down, so packets
//! between the two sides vanish (the host still routes to the subnet: its
//! sends are black-holed, not refused), and [`NetNs::heal`] brings it back.
//!
//! Needs root (CAP_NET_ADMIN) and the `ip` tool; [`NetNs::create`] says why
//! when it cannot, so the caller can skip loudly.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace and its veth pair.
pub struct NetNs {
    /// Namespace name (unique per process and call).
    pub name: String,
    host_dev: String,
    ns_dev: String,
    /// The host's address on the veth.
    pub host_addr: Ipv4Addr,
    /// The namespace's address on the veth.
    pub ns_addr: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetNs {
    /// Creates the namespace, the veth pair and the addresses; both ends up.
    pub fn create() -> Result<NetNs, String> {
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Unique among concurrent runs: pid and a per-process counter pick
        // the /30 inside 10.213.0.0/16 and the names (≤ 15 bytes).
        let slot = (pid.wrapping_mul(7) + n) % 16_384;
        let (third, fourth) = ((slot / 64) as u8, ((slot % 64) * 4) as u8);
        let tag = format!("{:x}", (pid << 4) | (n & 0xf));
        let ns = NetNs {
            name: format!("htsc-{tag}"),
            host_dev: format!("hc{tag}h"),
            ns_dev: format!("hc{tag}n"),
            host_addr: Ipv4Addr::new(10, 213, third, fourth + 1),
            ns_addr: Ipv4Addr::new(10, 213, third, fourth + 2),
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop cleans up whatever was made.
        ip(&[
            "link",
            "add",
            &ns.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_dev,
        ])?;
        ip(&["link", "set", &ns.ns_dev, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_addr),
            "dev",
            &ns.host_dev,
        ])?;
        ip(&["link", "set", &ns.host_dev, "up"])?;
        ns.inside(&[
            "addr",
            "add",
            &format!("{}/30", ns.ns_addr),
            "dev",
            &ns.ns_dev,
        ])?;
        ns.inside(&["link", "set", &ns.ns_dev, "up"])?;
        ns.inside(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn inside(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["netns", "exec", &self.name, "ip"];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// The /30 subnet in CIDR notation.
    pub fn cidr(&self) -> String {
        let [a, b, c, d] = self.host_addr.octets();
        format!("{}/30", std::net::Ipv4Addr::new(a, b, c, d & !3))
    }

    /// The command prefix that runs a program inside the namespace.
    pub fn wrapper(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name.clone(),
        ]
    }

    /// Cuts the link: the namespace's end goes down.
    pub fn partition(&self) -> Result<(), String> {
        self.inside(&["link", "set", &self.ns_dev, "down"])
    }

    /// Restores the link.
    pub fn heal(&self) -> Result<(), String> {
        self.inside(&["link", "set", &self.ns_dev, "up"])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both.
        let _ = ip(&["link", "del", &self.host_dev]);
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "chaos: could not remove network namespace {}: {e}",
                self.name
            );
        }
    }
}
