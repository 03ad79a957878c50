//! `call-load`: joins N WebRTC bots into one group call of a bevy_calling call service and reports
//! join times, the service's CPU and memory per participant, packets forwarded per second, the
//! service's CPU per forwarded packet and the share of the speakers' packets each listener got.
//!
//! By default it starts a `call-service` binary next to its own as a child process (so the
//! service's CPU and memory are measured apart from the bots'); `--embedded` runs the service
//! in this process instead, and `--service-url` with `--secret` points it at a deployment
//! (`--service-pid` adds its CPU and memory when it runs on this machine). It exits non-zero when a bot did not join, a bot dropped, or a
//! listener got less than 99 % of the speakers' packets.

mod bot;
mod peer;
mod report;
mod service;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use call_protocol::{CallId, CommunicationIdentifier, Role};
use call_service::token::TokenIssuer;
use call_service::{CallService, ServiceConfig};
use clap::Parser;
use tokio::sync::{Semaphore, watch};

use bot::{BotPlan, BotStats};
use report::{Report, Roles, Snapshot};
use service::{ChildService, Probe};

/// Joins bots into one group call and measures the service.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// How many bots join the call.
    #[arg(long, default_value_t = 50)]
    bots: usize,
    /// How many of them speak (the first to join); the rest listen.
    #[arg(long, default_value_t = 3)]
    speakers: usize,
    /// How many bots send camera video (the first to join, so the first speakers).
    #[arg(long, default_value_t = 2)]
    cameras: usize,
    /// How many bots watch every camera (the last to join).
    #[arg(long, default_value_t = 20)]
    watchers: usize,
    /// Seconds measured once every bot joined and the warm-up passed.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds between the last join and the measured window.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Bots signing in at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Worker threads of the bots' runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A deployed service's signaling URL (`ws://host:port/ws`) instead of a child process.
    #[arg(long, requires = "secret")]
    service_url: Option<String>,
    /// The deployed service's token secret.
    #[arg(long, env = "CALL_SERVICE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// The deployed service's process id, to measure its CPU and memory.
    #[arg(long)]
    service_pid: Option<u32>,
    /// The `call-service` binary to start (default: the one next to this tool).
    #[arg(long)]
    service_bin: Option<PathBuf>,
    /// Run the service inside this process instead (its memory is then not told apart).
    #[arg(long, conflicts_with_all = ["service_url", "service_bin"])]
    embedded: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(report) => {
            if cli.json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                report.print();
            }
            if report.passed() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("call-load: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The service under load this tool started, kept running until the run ends.
#[derive(Default)]
struct Started {
    _child: Option<ChildService>,
    _embedded: Option<CallService>,
}

fn run(cli: &Cli) -> Result<Report, String> {
    let (service, url, secret, probe) = match (&cli.service_url, &cli.secret) {
        (Some(url), Some(secret)) => {
            let probe = cli.service_pid.map_or(Probe::None, Probe::Process);
            (Started::default(), url.clone(), secret.clone(), probe)
        }
        _ if cli.embedded => {
            let secret = format!("{:032x}", rand::random::<u128>());
            let service = CallService::start(ServiceConfig {
                secret: Some(secret.clone().into_bytes()),
                ..ServiceConfig::default()
            })
            .map_err(|e| e.to_string())?;
            let url = service.ws_url();
            let started = Started {
                _embedded: Some(service),
                ..Started::default()
            };
            (started, url, secret, Probe::Threads)
        }
        _ => {
            let binary = match &cli.service_bin {
                Some(path) => path.clone(),
                None => std::env::current_exe()
                    .map_err(|e| e.to_string())?
                    .with_file_name("call-service"),
            };
            let child = ChildService::start(binary)?;
            let (url, secret) = (child.url.clone(), child.secret.clone());
            let probe = Probe::Process(child.pid());
            let started = Started {
                _child: Some(child),
                ..Started::default()
            };
            (started, url, secret, probe)
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .thread_name("call-load")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let report = runtime.block_on(load(cli, &url, &secret, probe));
    drop(service);
    report
}

async fn load(cli: &Cli, url: &str, secret: &str, probe: Probe) -> Result<Report, String> {
    let issuer = TokenIssuer::new(secret.as_bytes());
    let local_ip = local_ip_towards(url)?;
    let group = CallId::new_group();
    let (stop_tx, stop) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(cli.concurrency.max(1)));
    let stats: Vec<Arc<BotStats>> = (0..cli.bots).map(|_| Arc::default()).collect();
    let user = |i: usize| CommunicationIdentifier::user(&format!("load-{i}"));
    let cameras = cli.cameras.min(cli.bots);
    let camera_users = (0..cameras).map(user).collect::<Result<Vec<_>, _>>();
    let camera_users = camera_users.map_err(|e| e.to_string())?;
    let watchers_from = cli.bots.saturating_sub(cli.watchers).max(cameras);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, stats) in stats.iter().enumerate() {
        let user =
            CommunicationIdentifier::user(&format!("load-{i}")).map_err(|e| e.to_string())?;
        let plan = BotPlan {
            url: url.to_owned(),
            token: issuer
                .issue_with_role(&user, Role::Attendee, Duration::from_secs(3600))
                .token,
            name: format!("bot {i}"),
            group: group.clone(),
            speaks: i < cli.speakers,
            sends_video: i < cameras,
            watches: if i >= watchers_from {
                camera_users.clone()
            } else {
                Vec::new()
            },
            local_ip,
        };
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(bot::run(
            plan,
            stats.clone(),
            stop.clone(),
            permit,
        )));
    }
    let join_deadline = Instant::now() + Duration::from_secs(60);
    while stats.iter().any(|s| s.joined().is_none())
        && Instant::now() < join_deadline
        && !tasks.iter().all(|t| t.is_finished())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_joined_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(cli.warmup)).await;
    let before = Snapshot::take(&stats, probe);
    tokio::time::sleep(Duration::from_secs(cli.duration)).await;
    let after = Snapshot::take(&stats, probe);
    let dropped = tasks.iter().filter(|t| t.is_finished()).count();
    let _ = stop_tx.send(true);
    let mut errors = Vec::new();
    for task in tasks {
        if let Ok(Err(e)) = task.await {
            errors.push(e);
        }
    }
    let roles = Roles {
        bots: cli.bots,
        speakers: cli.speakers,
        cameras,
        watchers_from,
    };
    Ok(Report::new(
        roles,
        &stats,
        all_joined_after,
        &before,
        &after,
        dropped,
        errors,
    ))
}

/// The local address packets to the service's host leave from (loopback for a local service).
fn local_ip_towards(url: &str) -> Result<IpAddr, String> {
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .ok_or_else(|| format!("`{url}` is no ws:// URL"))?;
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    probe
        .connect((host, 9))
        .map_err(|e| format!("no route to {host}: {e}"))?;
    Ok(probe.local_addr().map_err(|e| e.to_string())?.ip())
}
