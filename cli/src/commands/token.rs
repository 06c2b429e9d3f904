//! `hts token`: mints a login token.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `hts token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Account the token authenticates (the JWT `sub`).
    #[arg(long, default_value = "ACC-0001")]
    pub account: String,
    /// Lifetime of the token in seconds.
    #[arg(long, default_value_t = 86_400)]
    pub ttl_secs: u64,
    /// File holding the signing secret (else HTS_JWT_SECRET, else hts-data/jwt.secret).
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
}

/// Prints a token for the account.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let secret = crate::secret::resolve(args.jwt_secret_file.as_deref())?;
    let token =
        hts_gateway::auth::mint_token(&secret, &args.account, Duration::from_secs(args.ttl_secs))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
