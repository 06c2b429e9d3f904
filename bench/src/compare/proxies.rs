//! Peer proxies for the comparison: nginx as an L7 gRPC proxy and HAProxy as
//! an L4 TCP proxy, configured in a temp dir and run in the foreground.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use super::procs::{free_addr, spawn_listening, Service};

/// nginx (one process: `master_process off`, one worker) proxying gRPC from a
/// free loopback port to `backend` with `grpc_pass` over kept-alive HTTP/2.
pub fn nginx_config(dir: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    upstream order_service {{
        server {backend};
        keepalive 64;
    }}
    server {{
        listen {listen} http2;
        http2_max_concurrent_streams 1024;
        location / {{
            grpc_pass grpc://order_service;
        }}
    }}
}}
"
    )
}

/// HAProxy in TCP mode forwarding every connection on `listen` to `backend`.
pub fn haproxy_config(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend frames
    bind {listen}
    default_backend echo
backend echo
    server echo1 {backend}
"
    )
}

/// Starts nginx in front of the gRPC server at `backend`.
pub fn start_nginx(program: &Path, dir: &Path, backend: SocketAddr) -> anyhow::Result<Service> {
    let listen = free_addr()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir, listen, backend))
        .with_context(|| format!("writing {}", conf.display()))?;
    let conf_s = conf.display().to_string();
    let prefix = format!("{}/", dir.display());
    spawn_listening(
        "nginx",
        program,
        &["-p", &prefix, "-c", &conf_s, "-e", "stderr"],
        listen,
        dir,
    )
}

/// Starts HAProxy (TCP mode) in front of the frame server at `backend`.
pub fn start_haproxy(program: &Path, dir: &Path, backend: SocketAddr) -> anyhow::Result<Service> {
    let listen = free_addr()?;
    let conf = dir.join("haproxy.cfg");
    std::fs::write(&conf, haproxy_config(listen, backend))
        .with_context(|| format!("writing {}", conf.display()))?;
    let conf_s = conf.display().to_string();
    spawn_listening("haproxy", program, &["-db", "-f", &conf_s], listen, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_name_both_ends() {
        let l: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let n = nginx_config(Path::new("/tmp/x"), l, b);
        assert!(n.contains("listen 127.0.0.1:1000 http2;"));
        assert!(n.contains("server 127.0.0.1:2000;"));
        assert!(n.contains("grpc_pass grpc://order_service;"));
        let h = haproxy_config(l, b);
        assert!(h.contains("bind 127.0.0.1:1000"));
        assert!(h.contains("server echo1 127.0.0.1:2000"));
        assert!(h.contains("mode tcp"));
    }
}
