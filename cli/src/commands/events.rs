//! `hts events tail`: follow the embedded JSON-lines event log.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

/// How often a followed log is checked for new lines.
const POLL: Duration = Duration::from_millis(200);

/// Flags of `hts events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: EventsCommand,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Print the events of the log, then follow new ones (like `tail -f`).
    Tail(TailArgs),
}

/// Flags of `hts events tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The event log (default: DATA_DIR/events.jsonl).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Data directory of `hts demo`.
    #[arg(long, default_value = "hts-data")]
    data_dir: PathBuf,
    /// Print what is there and exit instead of following.
    #[arg(long)]
    no_follow: bool,
    /// Start at the end: print only events appended from now on.
    #[arg(long)]
    from_end: bool,
}

/// Runs `hts events …`.
pub async fn run(args: EventsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EventsCommand::Tail(tail) => {
            tokio::task::spawn_blocking(move || tail_log(tail))
                .await
                .context("tail task failed")??;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn tail_log(args: TailArgs) -> anyhow::Result<()> {
    let path = args
        .file
        .unwrap_or_else(|| args.data_dir.join("events.jsonl"));
    let mut offset = 0u64;
    let mut first = true;
    let stdout = std::io::stdout();
    loop {
        match std::fs::File::open(&path) {
            Ok(mut file) => {
                let len = file.metadata()?.len();
                if first && args.from_end {
                    offset = len;
                }
                if len < offset {
                    offset = 0; // truncated or replaced: start over
                }
                file.seek(SeekFrom::Start(offset))?;
                let mut reader = BufReader::new(file);
                let mut line = String::new();
                // Only complete lines: a writer may be mid-append.
                while reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
                    offset += line.len() as u64;
                    let mut out = stdout.lock();
                    out.write_all(line.as_bytes())?;
                    out.flush()?;
                    line.clear();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !args.no_follow => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
        first = false;
        if args.no_follow {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}
