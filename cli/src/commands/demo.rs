//! `hts demo`: the whole system in one process on the embedded SQLite store.
//!
//! Opens and checks both stores (creating them on the first run, when the
//! data directory holds neither), then starts the account service (seeded
//! with the demo accounts), three order services sharing one order store
//! (one writer thread), and the gateway, all talking real gRPC
//! over loopback; then places a sample order through the gateway's TCP
//! protocol and keeps serving until Ctrl-C or SIGTERM, when it drains the
//! gateway first and the backends after it.

use anyhow::Context;
use clap::Args;
use hts_account_service::AccountServiceConfig;
use hts_client::Client;
use hts_gateway::{Gateway, GatewayConfig};
use hts_order_core::OrderServiceConfig;
use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, QueryOrderRequest, Side};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Flags of `hts demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address the gateway listens on for client terminals.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: String,
    /// Directory for the SQLite stores and the JWT secret.
    #[arg(long, default_value = crate::secret::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Number of order-service backends.
    #[arg(long, default_value_t = 3)]
    pub order_services: usize,
    /// Do not place the sample order at start-up.
    #[arg(long)]
    pub no_sample: bool,
    /// Overall deadline of each request at the gateway, in milliseconds
    /// (default: the gateway's own, 50 ms).
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// Create the stores if missing. Implied on the first run, when the
    /// data directory holds neither store; otherwise a missing, empty,
    /// damaged or swapped store stops the demo at start, naming it.
    #[arg(long)]
    pub init: bool,
}

/// The store files of the demo, in its data directory.
const STORE_FILES: [&str; 2] = ["accounts.db", "orders.db"];

type ServiceTask = JoinHandle<anyhow::Result<()>>;

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.order_services == 0 {
        anyhow::bail!("--order-services must be at least 1");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let secret = crate::secret::resolve_or_create(&args.data_dir)?;
    let stop = crate::shutdown::token_on_signal();

    let backends_stop = CancellationToken::new();
    let mut backend_tasks: Vec<ServiceTask> = Vec::new();

    let first_run = STORE_FILES
        .iter()
        .all(|file| !args.data_dir.join(file).exists());
    let init = args.init || first_run;
    if first_run {
        println!(
            "First run: creating new stores in {}",
            args.data_dir.display()
        );
    }

    // The stores are opened and checked before anything serves, so a
    // damaged, missing or swapped store stops the demo at once, naming it.
    let account_listener = TcpListener::bind("127.0.0.1:0").await?;
    let account_url = format!("http://{}", account_listener.local_addr()?);
    let account_config = AccountServiceConfig {
        seed_demo: true,
        init,
        ..AccountServiceConfig::new(sqlite_url(&args.data_dir, "accounts.db"))
    };
    let account_store = hts_account_service::open(&account_config).await?;
    backend_tasks.push(tokio::spawn(hts_account_service::serve_store(
        account_listener,
        account_store,
        backends_stop.clone().cancelled_owned(),
    )));

    let mut backend_urls = Vec::new();
    let mut backend_listeners = Vec::new();
    for _ in 0..args.order_services {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        backend_urls.push(format!("http://{}", listener.local_addr()?));
        backend_listeners.push(listener);
    }
    // The backends share one order store (one writer thread) instead of
    // contending for the SQLite file's lock from one process.
    let config = OrderServiceConfig {
        release_retry_interval: Duration::from_secs(1),
        init,
        pairing_timeout: Duration::from_secs(5),
        ..OrderServiceConfig::new(sqlite_url(&args.data_dir, "orders.db"), account_url.clone())
    };
    let prepared = match hts_order_core::prepare(config).await {
        Ok(prepared) => prepared,
        Err(e) => {
            backends_stop.cancel();
            return Err(e);
        }
    };
    backend_tasks.push(tokio::spawn(prepared.serve(
        backend_listeners,
        hts_order_core::fault::FaultInjector::new(Default::default()),
        None,
        backends_stop.clone().cancelled_owned(),
    )));

    let ready_within = Duration::from_secs(30);
    crate::readiness::wait_serving(&account_url, "hts.v1.AccountService", ready_within).await?;
    for url in &backend_urls {
        crate::readiness::wait_serving(url, "hts.v1.OrderService", ready_within).await?;
    }

    let (gateway_listener, gateway_addr) =
        super::bind_and_announce("gateway", &args.listen).await?;
    let mut gateway_config = GatewayConfig {
        listen: gateway_addr.to_string(),
        backends: backend_urls.clone(),
        jwt_secret: secret.clone(),
        ..GatewayConfig::default()
    };
    if let Some(ms) = args.request_timeout_ms {
        gateway_config.request_timeout_ms = Duration::from_millis(ms).into();
    }
    let gateway = Gateway::from_listener(gateway_listener, gateway_config)?;
    let gateway_stop = CancellationToken::new();
    let mut gateway_task: ServiceTask =
        tokio::spawn(gateway.run(gateway_stop.clone().cancelled_owned()));

    let token = hts_gateway::auth::mint_token(&secret, "ACC-0001", Duration::from_secs(86_400))?;
    print_banner(
        gateway_addr,
        &account_url,
        &backend_urls,
        &args.data_dir,
        &token,
    );

    if !args.no_sample {
        place_sample(gateway_addr, &token)
            .await
            .context("the sample order through the gateway failed")?;
    }
    println!("Serving. Press Ctrl-C to stop.");

    let gateway_result = tokio::select! {
        _ = stop.cancelled() => {
            gateway_stop.cancel();
            (&mut gateway_task).await
        }
        result = &mut gateway_task => result,
    };
    backends_stop.cancel();
    let mut failure = flatten(gateway_result).err();
    for task in backend_tasks {
        if let Err(e) = flatten(task.await) {
            failure.get_or_insert(e);
        }
    }
    match failure {
        Some(e) => Err(e),
        None => {
            println!("Stopped cleanly.");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn flatten(result: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    result.map_err(|e| anyhow::anyhow!("service task failed: {e}"))?
}

fn sqlite_url(dir: &Path, file: &str) -> String {
    format!("sqlite:{}", dir.join(file).display())
}

fn print_banner(
    gateway: SocketAddr,
    account_url: &str,
    backends: &[String],
    data_dir: &Path,
    token: &str,
) {
    println!();
    println!("HTS order gateway demo (embedded SQLite store, no external servers)");
    println!("  gateway         {gateway}  (TCP: 24-byte header + protobuf, docs/protocol.md)");
    println!("  order services  {}", backends.join(", "));
    println!("  account service {account_url}  (accounts ACC-0001..ACC-1000 seeded)");
    println!("  data directory  {}", data_dir.display());
    println!("  token for ACC-0001 (valid 24 h):");
    println!("    {token}");
    println!();
    println!("Place an order from another terminal:");
    println!(
        "  cargo run --release --bin hts -- place --addr {gateway} --token {token} \
         --symbol 005930 --side buy --price 70000 --qty 10"
    );
    println!();
}

async fn place_sample(gateway: SocketAddr, token: &str) -> anyhow::Result<()> {
    let client = Client::connect(gateway).await?;
    let login = client.login("ACC-0001", token).await?;
    if login.code != Code::Ok as i32 {
        anyhow::bail!("login refused: {}", login.message);
    }
    let request_id = format!("demo-{}", uuid::Uuid::new_v4());
    let request = PlaceOrderRequest {
        request_id: request_id.clone(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price: 70_000,
        quantity: 10,
    };
    // TIMEOUT means the outcome is unknown and SERVICE_UNAVAILABLE that nothing
    // was stored: either way re-sending the same request_id is safe, and the
    // order services guarantee it never places a second order.
    let mut attempt = 1;
    let placed = loop {
        let placed = client.place(request.clone()).await?;
        println!(
            "Sample order: BUY 10 x 005930 @ 70000 request_id={request_id} attempt={attempt} \
             -> code={} order_id={} status={} replayed={}",
            super::client::code_name(placed.code),
            placed.order_id,
            super::client::status_name(placed.status),
            placed.replayed
        );
        let retryable =
            placed.code == Code::Timeout as i32 || placed.code == Code::ServiceUnavailable as i32;
        if !retryable || attempt == 5 {
            break placed;
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if placed.code != Code::Ok as i32 {
        anyhow::bail!("sample order refused: {}", placed.message);
    }
    let queried = client
        .query(QueryOrderRequest {
            order_id: placed.order_id.clone(),
        })
        .await?;
    let status = queried.order.map_or(0, |o| o.status);
    println!(
        "Sample query: order_id={} -> code={} status={}",
        placed.order_id,
        super::client::code_name(queried.code),
        super::client::status_name(status)
    );
    Ok(())
}
