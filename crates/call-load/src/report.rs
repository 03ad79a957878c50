//! What a load run measured: counters before and after the window, and the figures from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bot::BotStats;
use crate::service::{Probe, ProcessUsage, usage};

/// Who does what in a run.
#[derive(Clone, Copy, Debug)]
pub struct Roles {
    /// Bots.
    pub bots: usize,
    /// The first this many speak.
    pub speakers: usize,
    /// The first this many send camera video.
    pub cameras: usize,
    /// Bots from this index on watch every camera.
    pub watchers_from: usize,
}

/// Every bot's counters and the service's usage at one moment.
pub struct Snapshot {
    at: Instant,
    sent: Vec<u64>,
    received: Vec<u64>,
    video_sent: Vec<u64>,
    video_received: Vec<u64>,
    service: Option<ProcessUsage>,
    tool: Option<ProcessUsage>,
}

impl Snapshot {
    /// Reads them now.
    pub fn take(stats: &[Arc<BotStats>], service: Probe) -> Self {
        let read = |counter: fn(&BotStats) -> &AtomicU64| {
            stats
                .iter()
                .map(|s| counter(s).load(Ordering::Relaxed))
                .collect()
        };
        Self {
            at: Instant::now(),
            sent: read(|s| &s.sent),
            received: read(|s| &s.received),
            video_sent: read(|s| &s.video_sent),
            video_received: read(|s| &s.video_received),
            service: service.usage(),
            tool: usage(std::process::id()),
        }
    }
}

/// The figures of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Bots asked for.
    pub bots: usize,
    /// Of them speaking.
    pub speakers: usize,
    /// Bots in the call with media up.
    pub joined: usize,
    /// Seconds until every bot had joined (or the join deadline).
    pub all_joined_s: f64,
    /// Join time percentiles, in milliseconds: from a bot's start (sign-in, offer, ICE, DTLS,
    /// join) to being in the call with media up.
    pub join_p50_ms: f64,
    /// 95th percentile.
    pub join_p95_ms: f64,
    /// Slowest.
    pub join_max_ms: f64,
    /// Length of the measured window, in seconds.
    pub window_s: f64,
    /// Audio frames the listeners got per second.
    pub delivered_pps: f64,
    /// Audio frames they should have got per second (every speaker's frames, to everyone else).
    pub expected_pps: f64,
    /// The lowest share of the speakers' frames one bot got.
    pub min_share: f64,
    /// The mean share.
    pub mean_share: f64,
    /// Bots that got less than 99 % of the speakers' frames, or of the cameras' frames.
    pub below_99: usize,
    /// Bots sending camera video.
    pub cameras: usize,
    /// Bots watching every camera.
    pub watchers: usize,
    /// Video frames the watchers got per second.
    pub video_delivered_fps: f64,
    /// Video frames they should have got per second.
    pub video_expected_fps: f64,
    /// The lowest share of the cameras' frames one watcher got.
    pub video_min_share: f64,
    /// Bots whose connection ended before the run did.
    pub dropped: usize,
    /// Why they ended.
    pub errors: Vec<String>,
    /// The service's CPU over the window, in cores (when its process is known).
    pub service_cores: Option<f64>,
    /// Its CPU per delivered frame (audio and video), in microseconds.
    pub service_us_per_packet: Option<f64>,
    /// Its resident memory at the end, in MiB.
    pub service_rss_mib: Option<f64>,
    /// Its resident memory per bot, in KiB.
    pub service_kib_per_participant: Option<f64>,
    /// This process's CPU (the bots, and an embedded service), in cores.
    pub bots_cores: Option<f64>,
}

fn cores(before: Option<ProcessUsage>, after: Option<ProcessUsage>, window: f64) -> Option<f64> {
    Some((after?.cpu.saturating_sub(before?.cpu)).as_secs_f64() / window)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

impl Report {
    /// The figures from the counters before and after the window.
    pub fn new(
        roles: Roles,
        stats: &[Arc<BotStats>],
        all_joined: Duration,
        before: &Snapshot,
        after: &Snapshot,
        dropped: usize,
        errors: Vec<String>,
    ) -> Self {
        let mut joins: Vec<Duration> = stats.iter().filter_map(|s| s.joined()).collect();
        joins.sort();
        let window = after.at.duration_since(before.at).as_secs_f64();
        let delta =
            |a: &[u64], b: &[u64]| -> Vec<u64> { a.iter().zip(b).map(|(a, b)| a - b).collect() };
        let sent = delta(&after.sent, &before.sent);
        let got = delta(&after.received, &before.received);
        let video_sent: u64 = delta(&after.video_sent, &before.video_sent).iter().sum();
        let video_got = delta(&after.video_received, &before.video_received);
        let watchers = &video_got[roles.watchers_from.min(video_got.len())..];
        let video_share = |got: u64| match video_sent {
            0 => 1.0,
            sent => got as f64 / sent as f64,
        };
        let total_sent: u64 = sent.iter().sum();
        // Each bot should get every speaker's frames but its own.
        let shares: Vec<f64> = (0..stats.len())
            .map(|i| {
                let expected = total_sent - sent[i];
                if expected == 0 {
                    1.0
                } else {
                    got[i] as f64 / expected as f64
                }
            })
            .collect();
        let expected: u64 = (0..stats.len()).map(|i| total_sent - sent[i]).sum();
        let delivered: u64 = got.iter().sum();
        let service_cores = cores(before.service, after.service, window);
        let Roles { bots, speakers, .. } = roles;
        Self {
            bots,
            speakers,
            joined: joins.len(),
            all_joined_s: all_joined.as_secs_f64(),
            join_p50_ms: percentile(&joins, 0.5),
            join_p95_ms: percentile(&joins, 0.95),
            join_max_ms: percentile(&joins, 1.0),
            window_s: window,
            delivered_pps: delivered as f64 / window,
            expected_pps: expected as f64 / window,
            min_share: shares.iter().copied().fold(f64::INFINITY, f64::min),
            mean_share: shares.iter().sum::<f64>() / shares.len().max(1) as f64,
            below_99: shares.iter().filter(|&&s| s < 0.99).count()
                + watchers.iter().filter(|&&g| video_share(g) < 0.99).count(),
            cameras: roles.cameras,
            watchers: watchers.len(),
            video_delivered_fps: watchers.iter().sum::<u64>() as f64 / window,
            video_expected_fps: (video_sent * watchers.len() as u64) as f64 / window,
            video_min_share: watchers.iter().map(|&g| video_share(g)).fold(1.0, f64::min),
            dropped,
            errors,
            service_cores,
            service_us_per_packet: service_cores
                .filter(|_| delivered + watchers.iter().sum::<u64>() > 0)
                .map(|c| {
                    let frames = delivered + watchers.iter().sum::<u64>();
                    c * window * 1e6 / frames as f64
                }),
            service_rss_mib: after
                .service
                .and_then(|u| u.rss)
                .map(|b| b as f64 / 1048576.0),
            service_kib_per_participant: after
                .service
                .and_then(|u| u.rss)
                .map(|b| b as f64 / 1024.0 / bots.max(1) as f64),
            bots_cores: cores(before.tool, after.tool, window),
        }
    }

    /// Every bot joined, none dropped, and every one got at least 99 % of the speakers' frames.
    pub fn passed(&self) -> bool {
        self.joined == self.bots && self.dropped == 0 && self.below_99 == 0
    }

    /// Prints the report for people.
    pub fn print(&self) {
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.3}{unit}"));
        println!(
            "bots {} ({} speaking): {} joined in {:.1} s; join p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            self.bots,
            self.speakers,
            self.joined,
            self.all_joined_s,
            self.join_p50_ms,
            self.join_p95_ms,
            self.join_max_ms
        );
        println!(
            "window {:.1} s: delivered {:.0} of {:.0} frames/s; share per bot min {:.2} %, mean {:.2} %, {} below 99 %; {} dropped",
            self.window_s,
            self.delivered_pps,
            self.expected_pps,
            self.min_share * 100.0,
            self.mean_share * 100.0,
            self.below_99,
            self.dropped
        );
        println!(
            "video: {} cameras to {} watchers, delivered {:.0} of {:.0} frames/s, min share {:.2} %",
            self.cameras,
            self.watchers,
            self.video_delivered_fps,
            self.video_expected_fps,
            self.video_min_share * 100.0
        );
        println!(
            "service: {} cores, {} per delivered frame, {} resident ({} per participant); bots: {} cores",
            opt(self.service_cores, ""),
            opt(self.service_us_per_packet, " µs"),
            opt(self.service_rss_mib, " MiB"),
            opt(self.service_kib_per_participant, " KiB"),
            opt(self.bots_cores, "")
        );
        for e in self.errors.iter().take(5) {
            println!("  a bot ended: {e}");
        }
        println!("{}", if self.passed() { "PASS" } else { "FAIL" });
    }
}
