//! Places one order through a running gateway and prints the answer.
//!
//! Start the system with `cargo run --release --bin hts -- demo`, copy the
//! token it prints, then:
//!
//! ```sh
//! cargo run -p hts-client --example place_order -- 127.0.0.1:7070 <token>
//! ```
//!
//! The order is a BUY of 10 × 005930 at 70,000 with a fresh request_id;
//! sending it again with the same request_id would replay the first answer
//! instead of placing a second order.

use std::process::ExitCode;

use hts_client::{Client, ClientError};
use hts_proto::v1::{Code, OrderType, PlaceOrderRequest, Side};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: place_order GATEWAY_ADDR TOKEN");
        return ExitCode::from(2);
    };
    match run(&addr, &token).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("place_order: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(addr: &str, token: &str) -> Result<bool, ClientError> {
    let client = Client::connect(addr).await?;
    let login = client.login("", token).await?;
    if login.code != Code::Ok as i32 {
        eprintln!("login refused: {}", login.message);
        return Ok(false);
    }
    let request_id = format!(
        "example-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let answer = client
        .place(PlaceOrderRequest {
            request_id,
            symbol: "005930".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            price: 70_000,
            quantity: 10,
            ..Default::default()
        })
        .await?;
    let code = Code::try_from(answer.code).unwrap_or(Code::Unspecified);
    println!(
        "{} order_id={} request_id={} {}",
        code.as_str_name(),
        answer.order_id,
        answer.request_id,
        answer.message
    );
    Ok(code == Code::Ok)
}
