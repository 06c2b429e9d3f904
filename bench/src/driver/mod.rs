//! One open-loop run: connect, schedule, send, drain, measure.
//!
//! A dedicated scheduler thread computes due times `t0 + i / rate` and hands
//! request `i` to connection `i % connections`; connections write as soon as
//! they receive, never waiting for earlier answers. If the harness itself
//! falls behind, the lag shows up in the latency from due time, in the
//! send-lag histogram and in the achieved rate, never hidden.

pub mod frames;
pub mod grpc;
pub mod state;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;

use crate::config::{LoadArgs, Mode};
use crate::procstat;
use crate::recorder::Recorder;
use crate::report::{ProcDelta, RunReport};
use crate::schedule::Schedule;
use crate::workload::{account_id, new_run_id};
use state::{Job, Progress, SharedState};

/// Connections opened at the same time while setting up.
const CONNECT_CONCURRENCY: usize = 64;
/// How long a login token stays valid.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often in-flight requests are checked against the timeout.
const TICK: Duration = Duration::from_millis(200);

/// Mints a login token for each of `accounts` demo accounts.
pub fn mint_tokens(secret: &str, accounts: usize) -> anyhow::Result<Vec<String>> {
    if secret.is_empty() {
        bail!("gateway mode needs the JWT secret: set HTS_JWT_SECRET or pass --jwt-secret");
    }
    (0..accounts)
        .map(|a| {
            hts_gateway::mint_token(secret.as_bytes(), &account_id(a), TOKEN_TTL)
                .with_context(|| format!("minting a token for {}", account_id(a)))
        })
        .collect()
}

struct Conns {
    senders: Vec<UnboundedSender<Job>>,
    states: Vec<SharedState>,
    tasks: Vec<JoinHandle<()>>,
}

async fn open(args: &LoadArgs, run_id: &str, progress: &Arc<Progress>) -> anyhow::Result<Conns> {
    if args.connections == 0 || args.accounts == 0 {
        bail!("--connections and --accounts must be at least 1");
    }
    let mut conns = Conns {
        senders: Vec::new(),
        states: Vec::new(),
        tasks: Vec::new(),
    };
    let connect_timeout = args.timeout.max(Duration::from_secs(5));
    match args.mode {
        Mode::Gateway => {
            let tokens = mint_tokens(&args.jwt_secret, args.accounts.min(args.connections))?;
            let opened: Vec<frames::FrameConn> =
                futures::stream::iter(0..args.connections)
                    .map(|c| {
                        let token = &tokens[c % tokens.len()];
                        let account = account_id(c % args.accounts);
                        async move {
                            frames::connect(&args.addr, &account, token, connect_timeout).await
                        }
                    })
                    .buffered(CONNECT_CONCURRENCY)
                    .try_collect()
                    .await?;
            for (c, conn) in opened.into_iter().enumerate() {
                let (tx, rx) = unbounded_channel();
                let state = SharedState::new(progress.clone());
                let (w, r) = conn.drive(rx, state.clone(), run_id.to_owned(), c as u64);
                conns.senders.push(tx);
                conns.states.push(state);
                conns.tasks.extend([w, r]);
            }
        }
        Mode::Direct => {
            let opened: Vec<grpc::GrpcConn> = futures::stream::iter(0..args.connections)
                .map(|c| {
                    let account = account_id(c % args.accounts);
                    async move { grpc::connect(&args.addr, &account, connect_timeout).await }
                })
                .buffered(CONNECT_CONCURRENCY)
                .try_collect()
                .await?;
            for (c, conn) in opened.into_iter().enumerate() {
                let (tx, rx) = unbounded_channel();
                let state = SharedState::new(progress.clone());
                let task = conn.drive(rx, state.clone(), run_id.to_owned(), c as u64, args.timeout);
                conns.senders.push(tx);
                conns.states.push(state);
                conns.tasks.push(task);
            }
        }
    }
    Ok(conns)
}

/// Lets the scheduler thread sleep with ~1 µs timer slack instead of the default 50 µs.
fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Hands every job of `schedule` to the connections at its due time.
fn schedule_jobs(
    schedule: Schedule,
    t0: Instant,
    senders: Vec<UnboundedSender<Job>>,
    mix: crate::mix::Mix,
    scheduled: Arc<AtomicU64>,
    seed: u64,
) {
    tighten_timer_slack();
    let mut rng = StdRng::seed_from_u64(seed);
    let n = senders.len() as u64;
    let mut i = 0u64;
    while i < schedule.total() {
        let now = Instant::now();
        let due_n = if now < t0 {
            0
        } else {
            schedule.due_by(now - t0)
        };
        while i < due_n {
            let job = Job {
                seq: i + 1,
                due: t0 + schedule.due(i),
                kind: mix.pick(&mut rng),
                measured: schedule.is_measured(i),
            };
            // A closed channel means that connection's task is gone; its
            // requests then never get an answer and the drain reports them.
            let _ = senders[(i % n) as usize].send(job);
            i += 1;
        }
        scheduled.store(i, Ordering::Relaxed);
        if i >= schedule.total() {
            break;
        }
        let next = t0 + schedule.due(i);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
    }
}

fn progress_bar(total: u64, hidden: bool) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} sent, {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn sample_all(pids: &[u32]) -> Vec<(u32, procstat::ProcSample)> {
    pids.iter()
        .filter_map(|&pid| match procstat::sample(pid) {
            Ok(s) => Some((pid, s)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot sample process {pid}");
                None
            }
        })
        .collect()
}

/// Runs one open-loop load run as `args` describe and reports it.
pub async fn run(args: &LoadArgs) -> anyhow::Result<RunReport> {
    let schedule = Schedule::new(args.rate, args.warmup, args.duration)
        .context("--rate must be a positive number")?;
    let run_id = new_run_id();
    let progress = Arc::new(Progress::default());
    let conns = open(args, &run_id, &progress).await?;

    let t0 = Instant::now() + Duration::from_millis(20);
    let window_start = t0 + schedule.due(schedule.warmup_requests());
    for s in &conns.states {
        s.lock().recorder.epoch = Some(window_start);
    }
    let scheduled = Arc::new(AtomicU64::new(0));
    let scheduler = {
        let senders = conns.senders.clone();
        let scheduled = scheduled.clone();
        let mix = args.mix;
        let seed = rand::thread_rng().gen();
        std::thread::Builder::new()
            .name("hts-bench-scheduler".into())
            .spawn(move || schedule_jobs(schedule, t0, senders, mix, scheduled, seed))
            .context("starting the scheduler thread")?
    };
    drop(conns.senders);
    let pids = args.pids.clone();
    let before = tokio::spawn(async move {
        tokio::time::sleep_until(window_start.into()).await;
        sample_all(&pids)
    });

    let bar = progress_bar(schedule.total(), args.no_progress);
    while !scheduler.is_finished() {
        tokio::time::sleep(TICK).await;
        for s in &conns.states {
            s.expire(args.timeout);
        }
        bar.set_position(scheduled.load(Ordering::Relaxed));
        bar.set_message(format!(
            "{} answered, {} not OK",
            progress.done.load(Ordering::Relaxed),
            progress.failed.load(Ordering::Relaxed)
        ));
    }
    if scheduler.join().is_err() {
        bail!("the scheduler thread panicked");
    }
    bar.set_position(schedule.total());

    // Drain: wait for the answers still in flight, up to the timeout.
    let drain_deadline = Instant::now() + args.timeout + TICK;
    loop {
        for s in &conns.states {
            s.expire(args.timeout);
        }
        let in_flight: usize = conns.states.iter().map(SharedState::in_flight).sum();
        if in_flight == 0 || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in &conns.states {
        s.expire(Duration::ZERO);
    }
    bar.finish_and_clear();
    let after = sample_all(&args.pids);
    let before = before.await.context("the sampling task failed")?;
    for t in &conns.tasks {
        t.abort();
    }

    let mut recorder = Recorder::default();
    for s in &conns.states {
        recorder.merge(&s.recorder());
    }
    let procs = before
        .into_iter()
        .filter_map(|(pid, b)| {
            let (_, a) = after.iter().find(|(p, _)| *p == pid)?;
            Some(ProcDelta {
                pid,
                name: procstat::command_name(pid).unwrap_or_default(),
                before: b,
                after: *a,
            })
        })
        .collect();
    Ok(RunReport::new(
        args,
        &schedule,
        &run_id,
        &recorder,
        window_start,
        procs,
    ))
}
