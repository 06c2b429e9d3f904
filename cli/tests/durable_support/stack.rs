//! hts processes wired to a PostgreSQL order store.

use std::time::{Duration, Instant};

use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, PlaceOrderResponse, Side};

use crate::support::{login, Proc};

/// Account service, order services and gateway.
pub struct Stack {
    /// Holds the SQLite account store when one is used.
    pub dir: tempfile::TempDir,
    /// The account service.
    pub account: Proc,
    /// The order services.
    pub orders: Vec<Proc>,
    /// The gateway.
    pub gateway: Proc,
}

/// Starts an order service on `store` with `extra` flags.
pub fn order_service(store: &str, account_url: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "order-service",
        "--init",
        "--listen",
        "127.0.0.1:0",
        "--store",
        store,
        "--account-service",
        account_url,
        "--db-pool-size",
        "8",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(&args)
}

impl Stack {
    /// Starts the account service (on `account_store`, or SQLite when
    /// `None`), `n` order services on `order_store` with `extra` flags, and
    /// a gateway with a 10 s request deadline.
    pub fn start(
        order_store: &str,
        account_store: Option<&str>,
        n: usize,
        extra: &[&str],
    ) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite:{}", dir.path().join("accounts.db").display());
        let account = Proc::spawn(&[
            "account-service",
            "--init",
            "--listen",
            "127.0.0.1:0",
            "--store",
            account_store.unwrap_or(&sqlite),
            "--db-pool-size",
            "8",
            "--seed-demo",
        ]);
        let orders: Vec<Proc> = (0..n)
            .map(|_| order_service(order_store, &account.url(), extra))
            .collect();
        let gateway = Self::gateway(&orders);
        Stack {
            dir,
            account,
            orders,
            gateway,
        }
    }

    fn gateway(orders: &[Proc]) -> Proc {
        let mut args: Vec<String> = vec![
            "gateway".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin-listen".into(),
            "127.0.0.1:0".into(),
        ];
        for o in orders {
            args.push("--backend".into());
            args.push(o.url());
        }
        args.push("--request-timeout-ms".into());
        args.push("10000".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Proc::spawn(&refs)
    }

    /// A logged-in gateway client.
    pub async fn client(&self, account: &str) -> hts_client::Client {
        login(self.gateway.addr, account).await
    }
}

/// A limit buy of 1 share of 005930 at 100.
pub fn buy(request_id: &str) -> PlaceOrderRequest {
    PlaceOrderRequest {
        request_id: request_id.into(),
        account_id: String::new(),
        symbol: "005930".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        price: 100,
        quantity: 1,
    }
}

/// Places `req` until it is answered OK (same request_id each time, so a
/// retry never places twice) or `budget` runs out. A client whose
/// connection broke is replaced by a fresh login.
pub async fn place_until_ok(
    gateway: std::net::SocketAddr,
    account: &str,
    client: &mut hts_client::Client,
    req: PlaceOrderRequest,
    budget: Duration,
) -> Option<PlaceOrderResponse> {
    let deadline = Instant::now() + budget;
    while Instant::now() < deadline {
        if client.is_closed() {
            *client = login(gateway, account).await;
        }
        match client.place(req.clone()).await {
            Ok(r) if r.code == Code::Ok as i32 => return Some(r),
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    None
}
