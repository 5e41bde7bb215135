//! `smoothcast` — the command line. Exit codes: 0 ok, 2 bad input/profile, 1 runtime failure.

use clap::{Args, Parser, Subcommand};
use smoothcast::channel::{RunOptions, RunSummary};
use smoothcast::control::{self, notify::Notifier, Supervisor};
use smoothcast::profile::{self, ControlToken, DestinationPlan, Plan};
use smoothcast::push::SessionStatus;
use smoothcast::sink::{self, SinkConfig};
use smoothcast::time::{Clocks, SystemClocks};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// List the capture hardware this box sees (V4L2 video, ALSA capture), to write its hw map.
    Hw {
        /// JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Run the built-in test publishing point (ingest, validation, archive, client manifest).
    Sink(SinkArgs),
    /// N+M standby: watch the channels published in etcd and take over one whose box failed.
    Standby(StandbyArgs),
    /// Watch and drive channels in a terminal UI (a client of their control APIs).
    Console(smoothcast::console::ConsoleArgs),
    /// Write the raw synthetic source of a profile (benchmarks feed it to other encoders).
    #[command(hide = true)]
    BenchSource(BenchSourceArgs),
}

#[derive(Args)]
struct SinkArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Archive every track's de-duplicated fragments under DIR.
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Write the JSON report to FILE on exit.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Seconds of media kept per track for players (DVRWindowLength).
    #[arg(long, default_value_t = 120)]
    dvr_window: u64,
}

/// etcd membership options shared by `run --etcd` and `standby`.
#[derive(Args, Clone)]
struct EtcdArgs {
    /// etcd client URL (repeatable for a cluster): makes this box an N+M member.
    #[arg(long = "etcd", value_name = "URL")]
    etcd: Vec<String>,
    /// This box's id in the pool (default: the host name); also sent in the User-Agent.
    #[arg(long, value_name = "ID")]
    box_id: Option<String>,
    /// Lease TTL in whole seconds: a failed box is detected within this time.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    lease_ttl: u64,
    /// Key prefix in etcd.
    #[arg(long, value_name = "PREFIX", default_value = smoothcast::standby::DEFAULT_PREFIX)]
    etcd_prefix: String,
}

impl EtcdArgs {
    fn coordination(&self) -> Option<smoothcast::standby::Coordination> {
        (!self.etcd.is_empty()).then(|| smoothcast::standby::Coordination {
            endpoints: self.etcd.clone(),
            box_id: self.box_id(),
            lease_ttl: Duration::from_secs(self.lease_ttl.max(1)),
            prefix: self.etcd_prefix.clone(),
        })
    }
    fn box_id(&self) -> String {
        self.box_id
            .clone()
            .unwrap_or_else(smoothcast::standby::default_box_id)
    }
}

#[derive(Args)]
struct StandbyArgs {
    #[command(flatten)]
    etcd: EtcdArgs,
    /// This box's hw map: a channel is taken only if its logical inputs resolve here.
    #[arg(long, value_name = "FILE")]
    hw: PathBuf,
    /// Only take these channels (repeatable; default: any published channel).
    #[arg(long = "channel", value_name = "NAME")]
    channels: Vec<String>,
    /// Control API address of the channel once taken (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<SocketAddr>,
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
    /// Per-box suffix appended to every stream id (1+1 pairs on one-connection-per-id servers),
    /// e.g. `-a`.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    stream_suffix: Option<String>,
    /// Control API address, overriding the profile's `[control] listen` (port 0: any free
    /// port). Non-loopback addresses need a token.
    #[arg(long, value_name = "ADDR:PORT")]
    control: Option<SocketAddr>,
    /// File whose first line is the control API's bearer token (overrides the profile's).
    #[arg(long, value_name = "FILE")]
    control_token_file: Option<PathBuf>,
    /// Do not serve the control API.
    #[arg(long, conflicts_with_all = ["control", "control_token_file"])]
    no_control: bool,
    #[command(flatten)]
    member: EtcdArgs,
}

fn main() -> ExitCode {
    control::logging::init();
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
        Command::Sink(args) => run_sink(args),
        Command::Standby(args) => run_standby(args),
        Command::Hw { json } => match smoothcast::hw::list::run(json) {
            Ok(listing) => {
                print!("{listing}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Console(args) => smoothcast::console::main(args),
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
    let coordination = args.member.coordination();
    if coordination.is_some() || args.member.box_id.is_some() {
        plan.push.box_id = Some(args.member.box_id());
    }
    if coordination.is_some() && matches!(plan.timecode, profile::TimecodeSpec::Fixed { .. }) {
        eprintln!(
            "error: --etcd needs a shared running timecode (clock, ltc or v4l2), not a fixed \
             one: a standby taking the channel over must continue the timeline, not restart it"
        );
        return ExitCode::from(2);
    }
    // The built-in demo with nowhere to push: start the built-in publishing point in-process.
    let demo_sink = if args.profile.is_none()
        && args.push.is_empty()
        && !args.no_push
        && plan.destinations.is_empty()
    {
        match sink::start(SinkConfig::default()) {
            Ok(s) => {
                let url = s.url(&format!("/live/{}.isml", plan.channel));
                println!("built-in publishing point: {url}");
                println!("  client manifest for players: {url}/Manifest");
                plan.destinations = smoothcast::push::destinations_from_urls(&[url]);
                Some(s)
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let mut control_plan = plan.control.clone().unwrap_or_default();
    if let Some(addr) = args.control {
        control_plan.listen = addr;
    }
    if let Some(f) = &args.control_token_file {
        control_plan.token = Some(ControlToken::File(f.clone()));
    }
    let archive = args.archive.clone().or_else(|| plan.archive.clone());
    let clocks: Arc<dyn Clocks> = SystemClocks::new();
    let opts = RunOptions {
        fast: args.fast,
        duration_secs: args.duration,
        archive,
        push: !args.no_push,
        clocks,
        inputs: Default::default(),
        start_fragment: None,
    };
    let sup = match Supervisor::new(
        plan.clone(),
        opts,
        args.profile.clone(),
        Notifier::from_env(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    // The API is up before the channel starts, so a console sees "starting".
    let server = if args.no_control {
        None
    } else {
        match control::serve(sup.clone(), &control_plan) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(if e.is_bad_input() { 2 } else { 1 });
            }
        }
    };
    install_signal_handlers(sup.clone(), sup.fragment_duration());
    let started = Instant::now();
    if let Some(coord) = coordination {
        // N+M member: the channel starts when this box wins it (maybe never: standby).
        let record = smoothcast::standby::ProfileRecord {
            profile_toml: match &args.profile {
                Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
                None => profile::DEMO_PROFILE.to_string(),
            },
            origin: args
                .profile
                .as_ref()
                .map_or_else(|| "profiles/demo.toml".into(), |p| p.display().to_string()),
            push_urls: args.push.clone(),
            published_by: coord.box_id.clone(),
            published_unix_ms: 0,
        };
        let member = smoothcast::standby::Member::new(coord.clone(), sup.clone(), Some(record));
        sup.set_redundancy(member.clone());
        sup.hold_idle();
        let spawned = spawn_async("n+m member", async move {
            let store = smoothcast::standby::agent::connect_retrying(&coord).await;
            member
                .run(store, smoothcast::standby::MemberStart::Acquire)
                .await;
        });
        if let Err(e) = spawned {
            eprintln!("error: N+M member thread: {e}");
            return ExitCode::from(1);
        }
    } else if let Err(e) = sup.start() {
        if sup.is_shutting_down() {
            // SIGTERM before the first run began: nothing to finish.
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {e}");
        return ExitCode::from(if e.is_bad_input() { 2 } else { 1 });
    }
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::thread::spawn({
        let sup = sup.clone();
        let done = done.clone();
        move || print_progress(&sup, &done)
    });
    let exit = sup.wait_exit();
    done.store(true, Ordering::SeqCst);
    let _ = progress.join();
    drop(server);
    let sink_report = demo_sink.map(|s| s.shutdown());
    match (exit.failed, exit.summary) {
        (false, Some(summary)) => {
            print_summary(&plan, &summary, started.elapsed());
            if let Some(r) = sink_report {
                print_sink_report(&r);
            }
            if !args.fast && plan.timecode == profile::TimecodeSpec::Clock {
                print_latency(&summary);
            }
            ExitCode::SUCCESS
        }
        (false, None) => ExitCode::SUCCESS,
        (true, _) => {
            eprintln!("error: {}", exit.error.unwrap_or_default());
            ExitCode::from(1)
        }
    }
}

fn print_progress(sup: &Supervisor, done: &AtomicBool) {
    let mut last = Instant::now();
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(2) {
            continue;
        }
        last = Instant::now();
        let Some(monitor) = sup.monitor() else {
            continue;
        };
        if monitor.is_finished() {
            continue;
        }
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

/// First SIGTERM/SIGINT: finish the current fragments, end every POST, exit 0 within one
/// fragment duration + 2 s. A second one exits at once.
fn install_signal_handlers(sup: Arc<Supervisor>, fragment: Duration) {
    let spawned = spawn_async("signals", async move {
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
                tracing::info!(
                    "stop requested: finishing the current fragments (again to exit at once)"
                );
                // Every POST must be over 1.5 s after the current fragment would end,
                // leaving time to exit within fragment + 2 s.
                let deadline = Instant::now() + fragment + Duration::from_millis(1500);
                sup.shutdown(deadline);
            } else {
                tracing::warn!("second stop request: exiting at once");
                std::process::exit(1);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no signal handling");
    }
}

/// Runs `task` on its own thread with a current-thread tokio runtime.
fn spawn_async(
    name: &str,
    task: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let name = name.to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(task),
                Err(e) => tracing::error!(thread = %name, error = %e, "no async runtime"),
            }
        })
        .map(|_| ())
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

fn run_standby(args: StandbyArgs) -> ExitCode {
    let Some(coord) = args.etcd.coordination() else {
        eprintln!("error: standby needs --etcd URL");
        return ExitCode::from(2);
    };
    if let Err(e) = smoothcast::hw::HwMap::load(&args.hw) {
        eprintln!("error: --hw: {e}");
        return ExitCode::from(2);
    }
    let taken: Arc<std::sync::Mutex<Option<Arc<Supervisor>>>> = Arc::default();
    let cfg = smoothcast::standby::AgentConfig {
        coord,
        hw_map: args.hw,
        control: args.control,
        channels: args.channels,
        taken: taken.clone(),
    };
    // SIGTERM/SIGINT: a channel taken over finishes its current fragment and ends every POST
    // (like `run`); then the process exits and its lease expires, so another standby takes
    // the channel. Without a channel: exit at once.
    std::thread::spawn(move || {
        wait_for_signal();
        let sup = taken.lock().ok().and_then(|s| s.clone());
        if let Some(sup) = sup {
            sup.shutdown(Instant::now() + sup.fragment_duration() + Duration::from_millis(1500));
            let _ = sup.wait_exit();
        }
        std::process::exit(0);
    });
    match smoothcast::standby::run_agent(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_sink(args: SinkArgs) -> ExitCode {
    let config = SinkConfig {
        listen: args.listen,
        archive: args.archive,
        report_file: args.report,
        dvr_window_secs: args.dvr_window,
        ..SinkConfig::default()
    };
    let handle = match sink::start(config) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    println!("sink listening on http://{}", handle.addr());
    println!(
        "  ingest:  POST http://{}/<path>.isml/Streams(<id>)",
        handle.addr()
    );
    println!(
        "  players: GET  http://{}/<path>.isml/Manifest",
        handle.addr()
    );
    println!("  report:  GET  http://{}/report", handle.addr());
    wait_for_signal();
    let report = handle.shutdown();
    print_sink_report(&report);
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    });
}

fn print_sink_report(r: &sink::Report) {
    println!(
        "publishing point report: {} requests, {} violations",
        r.requests,
        r.violations.len()
    );
    for t in &r.tracks {
        println!(
            "  {:<20} {:<6} {:>8} bit/s {:>5} fragments, {} gaps, {} duplicates dropped, {} violations",
            t.pubpoint,
            t.name,
            t.bitrate,
            t.fragments,
            t.gaps.len(),
            t.duplicates_dropped,
            t.violations
        );
    }
    for v in r.violations.iter().take(10) {
        println!("  violation: {v:?}");
    }
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
