//! The system under test, all real processes: PostgreSQL (optionally a
//! primary with a synchronous standby, both stores in it), the tansu
//! Kafka-protocol broker, the account service on PostgreSQL, N order
//! services on PostgreSQL publishing to the broker, and 1–2 gateways.
//!
//! Services listen on fixed ports once started, so a killed one restarts
//! where the gateway (or the order services) expect it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hts_proto::v1::Code;

use super::block_on;
use super::flags::Flags;
use crate::durable_support::kafka::Broker;
use crate::durable_support::pg::PgServer;
use crate::support::{login, Proc};

/// How to build the system.
#[derive(Debug, Clone)]
pub struct Options {
    /// Order services.
    pub order_services: usize,
    /// Gateways (each in front of every order service).
    pub gateways: usize,
    /// A synchronous standby for the database (leader switch).
    pub standby: bool,
    /// Local address the database, broker and account service listen on
    /// (127.0.0.1, or the host end of a veth so a namespace reaches them).
    pub host: String,
    /// Network (CIDR) whose clients the database lets in besides loopback.
    pub client_cidr: Option<String>,
    /// The last order service runs inside this namespace (its `ip netns
    /// exec` prefix) listening on the given address.
    pub isolated_last: Option<(Vec<String>, String)>,
    /// Flags of order service `i` on top of [`Options::order_defaults`].
    pub order_flags: Vec<Flags>,
    /// Extra gateway flags.
    pub gateway_flags: Flags,
    /// The gateway's request deadline.
    pub deadline: Duration,
}

impl Options {
    /// `order_services` order services behind `gateways` gateways, one database.
    pub fn new(order_services: usize, gateways: usize) -> Options {
        Options {
            order_services,
            gateways,
            standby: false,
            host: "127.0.0.1".into(),
            client_cidr: None,
            isolated_last: None,
            order_flags: vec![Flags::default(); order_services],
            gateway_flags: Flags::default(),
            deadline: Duration::from_millis(2000),
        }
    }

    /// Flags every order service gets (each overridable per service):
    /// a short Kafka message timeout and a recovery job every second for
    /// rows READY for more than 2 s, so an outage's backlog drains within
    /// the scenario rather than after the 5-minute production interval.
    pub fn order_defaults(brokers: &str) -> Flags {
        Flags::default()
            .set("--db-pool-size", "8")
            .set("--kafka-brokers", brokers)
            .set("--kafka-message-timeout-ms", "3000")
            .set("--outbox-recovery-interval-ms", "1000")
            .set("--outbox-grace-ms", "2000")
            .set("--admin-listen", "127.0.0.1:0")
    }
}

/// One order service: how to (re)start it and the running process.
pub struct OrderService {
    wrapper: Vec<String>,
    flags: Flags,
    /// Its gRPC address (fixed after the first start).
    pub addr: SocketAddr,
    /// Its admin address (/metrics), when it has one.
    pub admin: Option<SocketAddr>,
    /// The process; `None` while killed.
    pub proc: Option<Proc>,
}

impl OrderService {
    fn spawn(wrapper: &[String], flags: &Flags) -> (Proc, Option<SocketAddr>) {
        let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
        let mut args = vec!["order-service".to_owned(), "--init".to_owned()];
        args.extend(flags.to_args());
        let mut proc = Proc::spawn_wrapped(&wrapper, &args, &[("RUST_LOG", log_level().as_str())]);
        let admin = flags.get("--admin-listen").map(|_| {
            let line = proc.wait_for_line(
                "hts order-service-admin listening on ",
                Duration::from_secs(60),
            );
            line.rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .expect("admin address")
        });
        (proc, admin)
    }

    /// The gRPC URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Log filter of the services (`HTS_CHAOS_LOG`, e.g. `warn` to debug a
/// failure). The default shows errors except librdkafka's: the faults make
/// every layer complain, and the producer's connection errors during a
/// broker outage or partition would bury the report.
fn log_level() -> String {
    std::env::var("HTS_CHAOS_LOG").unwrap_or_else(|_| "error,librdkafka=off,rdkafka=off".into())
}

/// The running system. Fields drop in declaration order: gateways first,
/// the databases last, so no service outlives what it depends on.
pub struct System {
    /// The gateways; `None` once stopped.
    pub gateways: Vec<Option<Proc>>,
    /// Their client addresses.
    pub gateway_addrs: Vec<SocketAddr>,
    /// Their admin addresses.
    pub gateway_admins: Vec<SocketAddr>,
    /// The gateways' request deadline.
    pub deadline: Duration,
    /// The order services.
    pub orders: Vec<OrderService>,
    /// The account service; `None` while stopped.
    pub account: Option<Proc>,
    account_flags: Flags,
    /// Its gRPC address (fixed).
    pub account_addr: SocketAddr,
    /// The broker.
    pub broker: Broker,
    /// Store URL of both services (multi-host with a standby).
    pub store_url: String,
    /// The database primary (first leader).
    pub pg: PgServer,
    /// Its synchronous standby, when asked for.
    pub standby: Option<PgServer>,
}

impl System {
    /// Starts everything and waits until an order goes through every gateway.
    pub fn start(opts: Options) -> System {
        let host = opts.host.as_str();
        let pg = PgServer::start();
        if let Some(cidr) = &opts.client_cidr {
            pg.allow_network(host, cidr);
        }
        let standby = opts.standby.then(|| {
            let s = PgServer::standby_of(&pg);
            pg.require_sync_standby();
            s
        });
        let store_url = match &standby {
            Some(s) => format!(
                "postgres://postgres@{host}:{},{host}:{}/postgres?target_session_attrs=read-write",
                pg.port, s.port
            ),
            None => format!("postgres://postgres@{host}:{}/postgres", pg.port),
        };
        let broker = Broker::start_on(host);
        let account_flags = Flags::default()
            .set("--listen", &format!("{host}:0"))
            .set("--store", &store_url)
            .set("--db-pool-size", "8")
            .flag("--seed-demo");
        let account = spawn_account(&account_flags);
        let account_addr = account.addr;
        let account_flags = account_flags.set("--listen", &account_addr.to_string());
        let defaults = Options::order_defaults(&broker.brokers())
            .set("--store", &store_url)
            .set("--account-service", &format!("http://{account_addr}"));
        let mut orders = Vec::new();
        for i in 0..opts.order_services {
            let isolated = (i + 1 == opts.order_services)
                .then_some(opts.isolated_last.as_ref())
                .flatten();
            let (wrapper, listen) = match isolated {
                Some((w, addr)) => (w.clone(), format!("{addr}:0")),
                None => (Vec::new(), "127.0.0.1:0".to_owned()),
            };
            let mut flags = defaults.clone().set("--listen", &listen);
            flags = flags.merge(&opts.order_flags[i]);
            let (proc, admin) = OrderService::spawn(&wrapper, &flags);
            let addr = proc.addr;
            orders.push(OrderService {
                wrapper,
                flags: flags.set("--listen", &addr.to_string()),
                addr,
                admin,
                proc: Some(proc),
            });
        }
        let mut gateways = Vec::new();
        let mut gateway_addrs = Vec::new();
        let mut gateway_admins = Vec::new();
        for _ in 0..opts.gateways {
            let mut flags = Flags::default()
                .set("--listen", "127.0.0.1:0")
                .set("--admin-listen", "127.0.0.1:0")
                .set(
                    "--request-timeout-ms",
                    &opts.deadline.as_millis().to_string(),
                );
            for o in &orders {
                flags = flags.add("--backend", &o.url());
            }
            flags = flags.merge(&opts.gateway_flags);
            let mut args = vec!["gateway".to_owned()];
            args.extend(flags.to_args());
            let mut g = Proc::spawn_with_env(&args, &[("RUST_LOG", log_level().as_str())]);
            let line = g.wait_for_line("hts gateway-admin listening on ", Duration::from_secs(60));
            gateway_admins.push(
                line.rsplit(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("admin address"),
            );
            gateway_addrs.push(g.addr);
            gateways.push(Some(g));
        }
        let system = System {
            pg,
            standby,
            broker,
            store_url,
            account: Some(account),
            account_flags,
            account_addr,
            orders,
            gateways,
            gateway_addrs,
            gateway_admins,
            deadline: opts.deadline,
        };
        system.warm_up();
        system
    }

    /// Places orders for ACC-0600 (not one of the load's accounts) through
    /// every gateway until each answered OK several times in a row: every
    /// backend has opened its store, the topics exist.
    fn warm_up(&self) {
        block_on(async {
            for (g, addr) in self.gateway_addrs.iter().enumerate() {
                let client = login(*addr, "ACC-0600").await;
                let deadline = Instant::now() + Duration::from_secs(90);
                let mut streak = 0;
                let mut n = 0;
                while streak < 3 * self.orders.len().max(1) {
                    assert!(
                        Instant::now() < deadline,
                        "system did not answer OK through gateway {g} within 90 s"
                    );
                    n += 1;
                    let mut req = crate::durable_support::stack::buy(&format!("warm-g{g}-{n}"));
                    req.price = super::load::PRICE;
                    match client.place(req).await {
                        Ok(r) if r.code == Code::Ok as i32 => streak += 1,
                        _ => {
                            streak = 0;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        });
    }

    /// SIGKILLs order service `i`.
    pub fn kill_order_service(&mut self, i: usize) {
        if let Some(p) = self.orders[i].proc.take() {
            p.kill();
        }
    }

    /// Restarts order service `i` on its address with `overrides` applied.
    pub fn restart_order_service(&mut self, i: usize, overrides: &Flags) {
        let o = &mut self.orders[i];
        assert!(o.proc.is_none(), "order service {i} is running");
        let flags = o.flags.clone().merge(overrides);
        let (proc, admin) = OrderService::spawn(&o.wrapper, &flags);
        o.admin = admin;
        o.proc = Some(proc);
    }

    /// SIGKILLs the account service.
    pub fn kill_account(&mut self) {
        if let Some(p) = self.account.take() {
            p.kill();
        }
    }

    /// Starts the account service again on its address.
    pub fn restart_account(&mut self) {
        assert!(self.account.is_none(), "account service is running");
        self.account = Some(spawn_account(&self.account_flags));
    }

    /// A client of the database leader (the standby after a promotion),
    /// found through the store's multi-host URL.
    pub fn db(&self) -> tokio_postgres::Client {
        let url = self.store_url.clone();
        block_on(async move {
            let mut config: tokio_postgres::Config = url.parse().expect("store url");
            config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
            config.connect_timeout(Duration::from_secs(2));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match config.connect(tokio_postgres::NoTls).await {
                    Ok((client, conn)) => {
                        tokio::spawn(conn);
                        return client;
                    }
                    Err(e) if Instant::now() < deadline => {
                        eprintln!("chaos: waiting for the database leader: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => panic!("no database leader at {url}: {e}"),
                }
            }
        })
    }
}

fn spawn_account(flags: &Flags) -> Proc {
    let mut args = vec!["account-service".to_owned(), "--init".to_owned()];
    args.extend(flags.to_args());
    Proc::spawn_with_env(&args, &[("RUST_LOG", log_level().as_str())])
}
