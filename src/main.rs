//! `smoothcast` — the command line. Exit codes: 0 ok, 2 bad input/profile, 1 runtime failure.

use clap::{Args, Parser, Subcommand};
use smoothcast::channel::{self, ChannelMonitor, RunOptions, RunSummary};
use smoothcast::profile::{self, DestinationPlan, Plan};
use smoothcast::push::SessionStatus;
use smoothcast::time::{Clocks, SystemClocks};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "smoothcast",
    version,
    about = "Live encoder: timecode-locked H.264 ladder + AAC-LC as live Smooth Streaming (PIFF) ingest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a channel (no profile: the built-in synthetic demo).
    Run(RunArgs),
    /// Validate a profile and print the resolved plan.
    Check {
        /// Profile TOML file.
        profile: PathBuf,
    },
    /// Write the raw synthetic source of a profile (benchmarks feed it to other encoders).
    #[command(hide = true)]
    BenchSource(BenchSourceArgs),
}

#[derive(Args)]
struct BenchSourceArgs {
    /// Profile TOML file (synthetic inputs; use a fixed timecode for reproducible pictures).
    profile: PathBuf,
    /// Number of pictures.
    #[arg(long, default_value_t = 600)]
    frames: u64,
    /// Raw I420 output file (`-` = stdout).
    #[arg(long, value_name = "FILE")]
    video: PathBuf,
    /// Raw interleaved s16le output file for the tone covering the same media time.
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    /// Profile TOML file; omitted = the built-in demo (synthetic bars + tone).
    profile: Option<PathBuf>,
    /// Encode as fast as possible instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Stop cleanly after this many seconds of media (rounded up to whole fragments).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Write each stream's POST body to DIR/<stream-id>.ismv|.isma.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Do not push to any destination.
    #[arg(long)]
    no_push: bool,
    /// Publishing point URL (…/name.isml), repeatable; replaces the profile's destinations.
    /// The first is the primary, the others backups.
    #[arg(long = "push", value_name = "URL")]
    push: Vec<String>,
    /// Per-box suffix appended to every stream id (1+1 pairs on one-connection-per-id servers).
    #[arg(long, value_name = "S")]
    stream_suffix: Option<String>,
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { profile } => match profile::load(&profile) {
            Ok(plan) => {
                print!("{}", profile::describe(&plan));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(args) => run(args),
        Command::BenchSource(args) => bench_source(args),
    }
}

fn bench_source(args: BenchSourceArgs) -> ExitCode {
    let plan = match profile::load(&args.profile) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let open = |p: &PathBuf| -> std::io::Result<Box<dyn std::io::Write>> {
        Ok(if p.as_os_str() == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(std::fs::File::create(p)?))
        })
    };
    let written = open(&args.video).and_then(|mut video| {
        let mut audio = args.audio.as_ref().map(open).transpose()?;
        Ok(smoothcast::bench::dump_source(
            &plan,
            SystemClocks::new().as_ref(),
            args.frames,
            &mut video,
            audio
                .as_mut()
                .map(|a| a.as_mut() as &mut dyn std::io::Write),
        ))
    });
    match written {
        Ok(Ok(d)) => {
            eprintln!(
                "{} frames {}x{} from frame {}, {} audio samples from sample {}",
                d.frames, d.width, d.height, d.first_frame.0, d.samples, d.first_sample.0
            );
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(args: RunArgs) -> ExitCode {
    let mut plan: Plan = match &args.profile {
        Some(p) => match profile::load(p) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => profile::demo(),
    };
    if !args.push.is_empty() {
        match destinations_from_flags(&args.push) {
            Ok(d) => plan.destinations = d,
            Err(e) => {
                eprintln!("error: --push: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(s) = &args.stream_suffix {
        plan.push.stream_suffix = Some(s.clone());
    }
    let archive = args.archive.clone().or_else(|| plan.archive.clone());
    let clocks: Arc<dyn Clocks> = SystemClocks::new();
    let opts = RunOptions {
        fast: args.fast,
        duration_secs: args.duration,
        archive,
        push: !args.no_push,
        clocks,
    };
    let started = Instant::now();
    let handle = match channel::start(&plan, opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(if e.is_bad_input() { 2 } else { 1 });
        }
    };
    let monitor = handle.monitor();
    install_signal_handlers(monitor.clone());
    let progress = std::thread::spawn({
        let monitor = monitor.clone();
        move || print_progress(&monitor)
    });
    let result = handle.wait(Duration::from_secs(5));
    let _ = progress.join();
    match result {
        Ok(summary) => {
            print_summary(&plan, &summary, started.elapsed());
            if !args.fast && plan.timecode == profile::TimecodeSpec::Clock {
                print_latency(&summary);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_progress(monitor: &ChannelMonitor) {
    let mut last = Instant::now();
    while !monitor.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(2) {
            continue;
        }
        last = Instant::now();
        let st = monitor.status();
        let tracks: Vec<String> = st
            .tracks
            .iter()
            .map(|t| format!("{} {} frags", t.label, t.fragments))
            .collect();
        println!("[{}] {}", st.channel, tracks.join(" | "));
        for s in &st.sessions {
            println!("    {}", session_line(s));
        }
    }
}

fn install_signal_handlers(handle: Arc<ChannelMonitor>) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "no signal handling");
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                let mut count = 0;
                loop {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                    count += 1;
                    if count == 1 {
                        tracing::info!("stop requested: finishing the current fragments (again to exit at once)");
                        handle.request_stop();
                    } else {
                        std::process::exit(1);
                    }
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no signal handling");
    }
}

fn destinations_from_flags(urls: &[String]) -> Result<Vec<DestinationPlan>, String> {
    for u in urls {
        let parsed = url::Url::parse(u).map_err(|e| format!("{}: {e}", profile::redact_url(u)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "{}: scheme must be http or https",
                profile::redact_url(u)
            ));
        }
    }
    let trimmed: Vec<String> = urls
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    Ok(smoothcast::push::destinations_from_urls(&trimmed))
}

/// One status line per push session: where it pushes, its state and its counters.
fn session_line(s: &SessionStatus) -> String {
    let mut line = format!(
        "{:<8} {:<24} {:?}{} sent {} frags / {} kB, reconnects {}, queue {}, replay {}",
        s.destination,
        format!("Streams({})", s.stream_id),
        s.state,
        if s.behind { " (behind)" } else { "" },
        s.fragments_sent,
        s.bytes_sent / 1000,
        s.reconnects,
        s.queue_depth,
        s.replay_depth,
    );
    if let Some(code) = s.last_http_status {
        line.push_str(&format!(", last HTTP {code}"));
    }
    if let Some(e) = &s.last_error {
        line.push_str(&format!(", last error: {e}"));
    }
    line
}

fn print_summary(plan: &Plan, s: &RunSummary, wall: Duration) {
    let media: f64 = s
        .tracks
        .first()
        .map(|t| {
            t.last_end
                .saturating_sub(t.first_time.unwrap_or(t.last_end)) as f64
                / f64::from(plan.timescale)
        })
        .unwrap_or(0.0);
    println!(
        "channel {}: {:.1} s of media in {:.1} s ({:.2}× real time), first fragment {}",
        s.channel,
        media,
        wall.as_secs_f64(),
        media / wall.as_secs_f64().max(1e-9),
        s.first_fragment
    );
    println!(
        "{:<22} {:>7} {:>9} {:>10} {:>12} {:>24}",
        "track", "trackID", "fragments", "samples", "kbit/s", "first tfxd time"
    );
    for t in &s.tracks {
        let secs = t
            .last_end
            .saturating_sub(t.first_time.unwrap_or(t.last_end)) as f64
            / f64::from(plan.timescale);
        let kbps = if secs > 0.0 {
            t.bytes as f64 * 8.0 / secs / 1000.0
        } else {
            0.0
        };
        println!(
            "{:<22} {:>7} {:>9} {:>10} {:>12.0} {:>24}",
            t.label,
            t.track_id,
            t.fragments,
            t.samples,
            kbps,
            t.first_time.map(|v| v.to_string()).unwrap_or_default()
        );
    }
    for sess in &s.sessions {
        println!("  {}", session_line(sess));
    }
    for f in &s.archive_files {
        println!("  archive: {}", f.display());
    }
}

/// The latency probe's figures: media time is UTC-locked, so "after the media ended" is real.
fn print_latency(s: &RunSummary) {
    println!("latency after the UTC end of each fragment's media, ms (p50 / p99 / max):");
    for t in &s.tracks {
        let fmt = |l: &smoothcast::push::latency::TrackLatency| {
            format!("{:.0} / {:.0} / {:.0}", l.p50_ms, l.p99_ms, l.max_ms)
        };
        let mut line = format!("  {:<22}", t.label);
        if let Some(p) = &t.packaged {
            line.push_str(&format!(" packaged {}", fmt(p)));
        }
        // The worst session for this track (every destination gets the same fragments).
        let wire = s
            .sessions
            .iter()
            .flat_map(|sess| sess.latency.iter())
            .filter(|l| l.track_id == t.track_id)
            .max_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
        if let Some(w) = wire {
            line.push_str(&format!(
                ", last byte on the wire {} ({} frags)",
                fmt(w),
                w.count
            ));
        }
        println!("{line}");
    }
}
