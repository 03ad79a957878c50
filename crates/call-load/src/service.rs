//! The service under load: a `call-service` child process this tool starts (so its CPU and
//! memory are its own), one embedded in this process (its CPU read from its threads), or a
//! deployment given by URL, optionally with its process id.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// CPU time and resident memory of a process, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessUsage {
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Resident set size, in bytes (unknown for threads of a process).
    pub rss: Option<u64>,
}

/// Where the service's usage is read.
#[derive(Clone, Copy, Debug)]
pub enum Probe {
    /// A process of its own.
    Process(u32),
    /// This process's threads named `call-service...` (an embedded service).
    Threads,
    /// Nowhere: a deployment on another machine.
    None,
}

impl Probe {
    /// The service's usage now, if it can be read.
    pub fn usage(self) -> Option<ProcessUsage> {
        match self {
            Self::Process(pid) => usage(pid),
            Self::Threads => Some(ProcessUsage {
                cpu: threads_cpu("call-service")?,
                rss: None,
            }),
            Self::None => None,
        }
    }
}

/// The CPU time of a `/proc` stat line.
fn stat_cpu(stat: &str) -> Option<Duration> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports CPU time in clock ticks of 1/100 s (USER_HZ) on every common platform.
    Some(Duration::from_millis(ticks * 10))
}

/// The CPU time of this process's threads whose names start with `name`.
fn threads_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(name) {
            let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
            total += stat_cpu(&stat).unwrap_or_default();
        }
    }
    Some(total)
}

/// Reads a process's usage; `None` when it is gone or `/proc` is not there.
pub fn usage(pid: u32) -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let cpu = stat_cpu(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(ProcessUsage {
        cpu,
        rss: Some(rss_kib * 1024),
    })
}

/// A `call-service serve` child process, stopped when dropped.
pub struct ChildService {
    child: Child,
    /// Its signaling URL.
    pub url: String,
    /// The secret its tokens are signed with.
    pub secret: String,
}

impl ChildService {
    /// Starts `binary serve` on loopback with free ports and a random secret, and waits until
    /// it prints its signaling URL.
    pub fn start(binary: PathBuf) -> Result<Self, String> {
        let secret = format!("{:032x}", rand::random::<u128>());
        let mut child = Command::new(&binary)
            .args(["serve", "--port", "0", "--media-port", "0"])
            .env("CALL_SERVICE_SECRET", &secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("signaling: ").map(str::to_owned));
        // Keep reading, so that its later lines never meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        match url {
            Some(url) => Ok(Self { child, url, secret }),
            None => {
                let _ = child.kill();
                Err(format!("{} did not print its URL", binary.display()))
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
