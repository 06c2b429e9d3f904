//! `hts`: runs the HTS order system's services, the all-in-one demo, and the
//! client commands that speak the gateway's TCP protocol.
//!
//! Every long-running subcommand prints one line `hts <role> listening on ADDR`
//! to standard output once it accepts connections, so scripts and tests can
//! bind port 0 and learn the real address. Logs go to standard error
//! (`RUST_LOG` sets the filter, default `info`).

mod commands;
mod metrics;
mod readiness;
mod secret;
mod shutdown;

use clap::{CommandFactory, FromArgMatches, Subcommand};

/// The hts command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "hts",
    version,
    about = "HTS order gateway: services, demo and client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the account service, three order services and the gateway in one
    /// process on the embedded SQLite store, and place a sample order.
    Demo(commands::demo::DemoArgs),
    /// Run the TCP gateway in front of one or more order-service backends.
    Gateway(Box<commands::gateway::GatewayArgs>),
    /// Run one order-service backend (gRPC).
    OrderService(Box<commands::order_service::OrderServiceArgs>),
    /// Run the account service (gRPC).
    AccountService(commands::account_service::AccountServiceArgs),
    /// Mint a login token (JWT, HS256) for an account.
    Token(commands::token::TokenArgs),
    /// Place an order through the gateway.
    Place(commands::client::PlaceArgs),
    /// Cancel an order through the gateway.
    Cancel(commands::client::CancelArgs),
    /// Query an order through the gateway.
    Query(commands::client::QueryArgs),
    /// Show an account's balances straight from the account service.
    Balance(commands::client::BalanceArgs),
    /// Order events: `hts events tail` follows the embedded event log.
    Events(commands::events::EventsArgs),
}

/// The ids of the flags given on the command line of `subcommand` (those
/// left at their default must not override the config file).
fn given_flags(matches: &clap::ArgMatches, subcommand: &str) -> std::collections::HashSet<String> {
    let Some(m) = matches.subcommand_matches(subcommand) else {
        return Default::default();
    };
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let gateway_flags = given_flags(&matches, "gateway");
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Gateway(args) => {
                commands::gateway::run(*args, &|id| gateway_flags.contains(id)).await
            }
            Command::OrderService(args) => commands::order_service::run(*args).await,
            Command::AccountService(args) => commands::account_service::run(args).await,
            Command::Token(args) => commands::token::run(args),
            Command::Place(args) => commands::client::place(args).await,
            Command::Cancel(args) => commands::client::cancel(args).await,
            Command::Query(args) => commands::client::query(args).await,
            Command::Balance(args) => commands::client::balance(args).await,
            Command::Events(args) => commands::events::run(args).await,
        }
    });
    // Background tasks (a store's retries, lazy connections) must not hold
    // up the exit, above all after a start-up failure.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
