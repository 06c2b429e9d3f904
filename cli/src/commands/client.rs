//! Client commands (`place`, `cancel`, `query`) that speak the gateway's TCP
//! protocol, and `balance`, which asks the account service directly.
//!
//! Each prints the response as `key=value` lines and exits non-zero unless the
//! response code is OK.

use anyhow::Context;
use clap::{Args, ValueEnum};
use hts_client::Client;
use hts_proto::v1::{
    CancelOrderRequest, Code, OrderStatus, OrderType, PlaceOrderRequest, QueryOrderRequest, Side,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How a client command reaches and logs in to the gateway.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub addr: String,
    /// Login token; without it one is minted for `--account` from the JWT secret.
    #[arg(long, env = "HTS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Account to log in as.
    #[arg(long, default_value = "ACC-0001")]
    pub account: String,
    /// File holding the JWT secret used to mint a token when `--token` is absent.
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM file of the CA (or self-signed certificate) to trust: connect over TLS.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Name the gateway's certificate must carry (default: the host part of --addr).
    #[arg(long, requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl ConnectArgs {
    /// Connects to the gateway and logs in.
    pub async fn login(&self) -> anyhow::Result<Client> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let secret = crate::secret::resolve(self.jwt_secret_file.as_deref())?;
                hts_gateway::auth::mint_token(&secret, &self.account, Duration::from_secs(3600))?
            }
        };
        let client = self
            .connect()
            .await
            .with_context(|| format!("cannot connect to the gateway at {}", self.addr))?;
        let response = client.login(&self.account, &token).await?;
        if response.code != Code::Ok as i32 {
            anyhow::bail!(
                "login refused: {} {}",
                code_name(response.code),
                response.message
            );
        }
        Ok(client)
    }

    /// Connects, over TLS when `--tls-ca` is given.
    async fn connect(&self) -> anyhow::Result<Client> {
        let Some(ca) = &self.tls_ca else {
            return Ok(Client::connect(self.addr.as_str()).await?);
        };
        let config = hts_client::tls::load_client_config(ca)?;
        let name = match &self.tls_server_name {
            Some(n) => n.clone(),
            None => host_of(&self.addr)?,
        };
        Ok(Client::connect_tls(self.addr.as_str(), &name, config).await?)
    }
}

/// The host part of `host:port` (`[v6]:port` gives `v6`).
fn host_of(addr: &str) -> anyhow::Result<String> {
    let (host, _port) = addr
        .rsplit_once(':')
        .with_context(|| format!("--addr {addr} is not HOST:PORT"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

/// Order side on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SideArg {
    /// Buy: reserves price × quantity cash.
    Buy,
    /// Sell: reserves quantity shares of the symbol.
    Sell,
}

/// Flags of `hts place`.
#[derive(Debug, Args)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Symbol, 1–12 of [A-Z0-9], e.g. 005930.
    #[arg(long)]
    pub symbol: String,
    /// buy or sell.
    #[arg(long, value_enum)]
    pub side: SideArg,
    /// Limit price in integer ticks.
    #[arg(long)]
    pub price: i64,
    /// Quantity, > 0.
    #[arg(long = "qty")]
    pub quantity: i64,
    /// Idempotency key; repeat a request with the same id to retry it safely. Default: a new UUID.
    #[arg(long)]
    pub request_id: Option<String>,
    /// How often to re-send the same request after TIMEOUT or SERVICE_UNAVAILABLE.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// Flags of `hts cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Order to cancel.
    #[arg(long)]
    pub order_id: String,
    /// Request id of the cancel. Default: a new UUID.
    #[arg(long)]
    pub request_id: Option<String>,
    /// How often to re-send the same request after TIMEOUT or SERVICE_UNAVAILABLE.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// Flags of `hts query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Order to look up.
    #[arg(long)]
    pub order_id: String,
    /// How often to re-send the query after TIMEOUT or SERVICE_UNAVAILABLE (reads are always safe to repeat).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

/// Flags of `hts balance`.
#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// Account service URL.
    #[arg(long, default_value = "http://127.0.0.1:50061")]
    pub account_service: String,
    /// Account to show.
    #[arg(long, default_value = "ACC-0001")]
    pub account: String,
}

/// `hts place`.
pub async fn place(args: PlaceArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.login().await?;
    let side = match args.side {
        SideArg::Buy => Side::Buy,
        SideArg::Sell => Side::Sell,
    };
    let request = PlaceOrderRequest {
        request_id: args
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        account_id: String::new(),
        symbol: args.symbol,
        side: side as i32,
        order_type: OrderType::Limit as i32,
        price: args.price,
        quantity: args.quantity,
    };
    let r = with_retries(args.retries, || client.place(request.clone()), |r| r.code).await?;
    println!("code={}", code_name(r.code));
    println!("message={}", r.message);
    println!("request_id={}", r.request_id);
    println!("order_id={}", r.order_id);
    println!("status={}", status_name(r.status));
    println!("replayed={}", r.replayed);
    Ok(exit_for(r.code))
}

/// `hts cancel`.
pub async fn cancel(args: CancelArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.login().await?;
    let request = CancelOrderRequest {
        request_id: args
            .request_id
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        order_id: args.order_id,
    };
    let r = with_retries(args.retries, || client.cancel(request.clone()), |r| r.code).await?;
    println!("code={}", code_name(r.code));
    println!("message={}", r.message);
    println!("order_id={}", r.order_id);
    println!("status={}", status_name(r.status));
    Ok(exit_for(r.code))
}

/// `hts query`.
pub async fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let client = args.connect.login().await?;
    let request = QueryOrderRequest {
        order_id: args.order_id,
    };
    let r = with_retries(args.retries, || client.query(request.clone()), |r| r.code).await?;
    println!("code={}", code_name(r.code));
    println!("message={}", r.message);
    if let Some(o) = r.order {
        println!("order_id={}", o.order_id);
        println!("request_id={}", o.request_id);
        println!("account_id={}", o.account_id);
        println!("symbol={}", o.symbol);
        println!(
            "side={}",
            Side::try_from(o.side).map_or("?", |s| s.as_str_name())
        );
        println!("price={}", o.price);
        println!("quantity={}", o.quantity);
        println!("status={}", status_name(o.status));
        println!("created_at_unix_ms={}", o.created_at_unix_ms);
    }
    Ok(exit_for(r.code))
}

/// `hts balance`.
pub async fn balance(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    let client = hts_account_client::AccountClient::connect_lazy(&args.account_service)?;
    let r = client.get_account(&args.account).await?;
    if !r.found {
        println!("found=false");
        return Ok(ExitCode::FAILURE);
    }
    println!("account_id={}", r.account_id);
    for b in r.balances {
        println!(
            "{} available={} reserved={}",
            b.asset, b.available, b.reserved
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Sends a request, and re-sends the same request (same request_id) up to
/// `retries` times while the answer is TIMEOUT (outcome unknown) or
/// SERVICE_UNAVAILABLE (nothing stored). Both are safe to repeat: the order
/// services deduplicate by request_id, so a retry never places a second order.
async fn with_retries<R, F, Fut>(
    retries: u32,
    mut send: F,
    code: impl Fn(&R) -> i32,
) -> Result<R, hts_client::ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<R, hts_client::ClientError>>,
{
    let mut attempt = 0;
    loop {
        let response = send().await?;
        let c = code(&response);
        let retryable = c == Code::Timeout as i32 || c == Code::ServiceUnavailable as i32;
        if !retryable || attempt >= retries {
            return Ok(response);
        }
        attempt += 1;
        eprintln!(
            "{} on attempt {attempt}; re-sending the same request",
            code_name(c)
        );
        tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
    }
}

/// The protobuf name of a response code, e.g. `OK`.
pub fn code_name(code: i32) -> &'static str {
    Code::try_from(code).map_or("UNKNOWN_CODE", |c| c.as_str_name())
}

/// The protobuf name of an order status, e.g. `ACCEPTED`.
pub fn status_name(status: i32) -> &'static str {
    OrderStatus::try_from(status).map_or("UNKNOWN_STATUS", |s| s.as_str_name())
}

fn exit_for(code: i32) -> ExitCode {
    if code == Code::Ok as i32 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_of_addr() {
        assert_eq!(host_of("gw.example:7070").unwrap(), "gw.example");
        assert_eq!(host_of("127.0.0.1:7070").unwrap(), "127.0.0.1");
        assert_eq!(host_of("[::1]:7070").unwrap(), "::1");
        assert!(host_of("nohost").is_err());
    }
}
