//! One module per subcommand.

pub mod account_service;
pub mod client;
pub mod demo;
pub mod events;
pub mod gateway;
pub mod order_service;
pub mod token;

use anyhow::Context;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds `addr` without announcing it: services that must open their store
/// first announce with [`announce`] once they can serve.
pub async fn bind(role: &str, addr: &str) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("{role}: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Binds `addr` and prints the `hts <role> listening on ADDR` line scripts wait for.
pub async fn bind_and_announce(
    role: &str,
    addr: &str,
) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let (listener, local) = bind(role, addr).await?;
    announce(role, local);
    Ok((listener, local))
}

/// Prints the `hts <role> listening on ADDR` line and flushes standard output.
pub fn announce(role: &str, addr: SocketAddr) {
    use std::io::Write;
    println!("hts {role} listening on {addr}");
    let _ = std::io::stdout().flush();
}
