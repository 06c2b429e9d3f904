//! `hts-bench`: open-loop load harness for the HTS order gateway.
//!
//! `hts-bench --addr HOST:PORT --rate 5000 --duration 10s` runs one load run;
//! the subcommands sweep rates, hold idle connections, run the side-by-side
//! comparisons, or serve the frame echo protocol. See docs/benchmarks.md.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hts_bench::compare::{self, CompareArgs};
use hts_bench::config::{LoadArgs, OutputArgs};
use hts_bench::idle::{self, IdleArgs};
use hts_bench::report::{self, RunReport};
use hts_bench::sweep::{self, SweepArgs};
use hts_bench::{driver, echo_server, plot};
use serde::Serialize;

/// The hts-bench command line.
#[derive(Debug, Parser)]
#[command(
    name = "hts-bench",
    version,
    about = "Open-loop load harness for the HTS order gateway",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Step the rate up to find the highest rate whose p99 stays under a target.
    Sweep {
        #[command(flatten)]
        sweep: SweepArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Open N idle logged-in connections and report the gateway's RSS.
    Connections {
        #[command(flatten)]
        idle: IdleArgs,
        /// Write the report as JSON to this file.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Start the system and peer proxies, run the side-by-side comparisons, print tables with ratios.
    Compare {
        #[command(flatten)]
        compare: CompareArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Serve the frame protocol answering every request OK without work (far end of the HAProxy comparison).
    EchoServer(EchoArgs),
}

/// Flags of `hts-bench echo-server`.
#[derive(Debug, Args)]
struct EchoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: String,
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn write_outputs(
    out: &OutputArgs,
    title: &str,
    runs: &[RunReport],
    json: &impl Serialize,
) -> anyhow::Result<()> {
    if let Some(path) = &out.json {
        write_json(path, json)?;
    }
    if let Some(path) = &out.plot {
        let with_text = plot::write_png(path, title, runs)?;
        eprintln!(
            "wrote {}{}",
            path.display(),
            if with_text {
                ""
            } else {
                " (no TrueType font found: drawn without text; set HTS_BENCH_FONT)"
            }
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => {
            let report = driver::run(&cli.load).await?;
            println!("{}", report::markdown(std::slice::from_ref(&report)));
            write_outputs(
                &cli.out,
                "hts-bench latency",
                std::slice::from_ref(&report),
                &report,
            )?;
        }
        Some(Command::Sweep { sweep, out }) => {
            let result = sweep::run(&sweep).await?;
            let runs: Vec<RunReport> = result.steps.iter().map(|(r, _)| r.clone()).collect();
            println!("{}", report::markdown(&runs));
            match result.best_rate {
                Some(rate) => println!(
                    "Highest rate with p99 ≤ {} ms and no errors: {rate:.0}/s",
                    result.p99_target_ms
                ),
                None => println!(
                    "No rate met p99 ≤ {} ms without errors",
                    result.p99_target_ms
                ),
            }
            write_outputs(&out, "hts-bench sweep", &runs, &result)?;
        }
        Some(Command::Connections { idle: args, json }) => {
            let result = idle::run(&args).await?;
            println!("{}", idle::markdown(&result));
            if let Some(path) = json {
                write_json(&path, &result)?;
            }
        }
        Some(Command::Compare { compare: args, out }) => {
            let result = compare::run(&args).await?;
            println!("{}", compare::markdown(&result));
            if let Some(path) = &out.json {
                write_json(path, &result)?;
            }
            if let Some(path) = &out.plot {
                for s in &result.scenarios {
                    let name = serde_json::to_value(s.scenario)?
                        .as_str()
                        .unwrap_or("scenario")
                        .to_owned();
                    let stem = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("compare");
                    let file = path.with_file_name(format!("{stem}-{name}.png"));
                    let sub = OutputArgs {
                        json: None,
                        plot: Some(file),
                    };
                    write_outputs(&sub, &format!("hts-bench compare: {name}"), &s.runs, &())?;
                }
            }
        }
        Some(Command::EchoServer(args)) => {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            {
                use std::io::Write;
                println!(
                    "hts-bench echo-server listening on {}",
                    listener.local_addr()?
                );
                let _ = std::io::stdout().flush();
            }
            echo_server::serve(listener).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
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
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
