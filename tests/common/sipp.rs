//! sipp (Debian's `sip-tester`) as the carrier: a SIP peer on loopback playing a scenario
//! from `tests/sipp/`, with its RTP echo on, and the service configured with it as the trunk.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use call_service::pstn::PstnConfig;
use call_service::{CallService, ServiceConfig};

/// A sipp process, killed when dropped.
pub struct Sipp {
    child: Child,
    /// Where it takes SIP.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP port free now on loopback, with the one two above it (sipp binds its media port and
/// that one).
fn free_port() -> u16 {
    loop {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let port = socket.local_addr().unwrap().port();
        if port < 65_000 && UdpSocket::bind(("127.0.0.1", port + 2)).is_ok() {
            return port;
        }
    }
}

impl Sipp {
    /// sipp answering one call with `scenario` (a file in `tests/sipp/`), echoing RTP.
    pub fn uas(scenario: &str) -> Self {
        Self::start(scenario, &[])
    }

    /// sipp placing one call with `scenario` to `number` at `gateway`, holding it `talk` after
    /// the answer, echoing RTP.
    pub fn uac(scenario: &str, gateway: SocketAddr, number: &str, talk: Duration) -> Self {
        let talk = talk.as_millis().to_string();
        let gateway = gateway.to_string();
        Self::start(scenario, &[&gateway, "-s", number, "-d", &talk])
    }

    fn start(scenario: &str, extra: &[&str]) -> Self {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp");
        let (sip, media) = (free_port(), free_port());
        let log = std::env::temp_dir().join(format!(
            "bevy_calling_sipp_{}_{scenario}.log",
            std::process::id()
        ));
        let child = Command::new("sipp")
            .args(["-sf", &dir.join(scenario).to_string_lossy()])
            .args(["-i", "127.0.0.1", "-p", &sip.to_string()])
            .args(["-mi", "127.0.0.1", "-mp", &media.to_string(), "-rtp_echo"])
            .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("sipp runs (Debian package sip-tester)");
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], sip)),
            log,
        }
    }

    /// Waits for sipp to finish its call; panics with its log unless it exits 0 (its
    /// scenario played out as written).
    pub fn finished(mut self) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("sipp's status") {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "sipp did not finish: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "sipp's scenario failed ({status}): {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// A trunk at `addr` without credentials or numbers, our calls from `+15550100`.
pub fn trunk(addr: SocketAddr) -> PstnConfig {
    PstnConfig {
        trunk: addr,
        sip_port: 0,
        credentials: None,
        caller_id: "+15550100".into(),
        dial_in: Default::default(),
    }
}

/// The embedded service with the carrier `pstn`, giving up on ringing after `ring`.
pub fn service_with(pstn: PstnConfig, ring: Duration) -> CallService {
    CallService::start(ServiceConfig {
        ring_timeout: ring,
        pstn: Some(pstn),
        ..ServiceConfig::default()
    })
    .expect("service with a trunk starts")
}

/// The embedded service with the trunk at `addr` as its carrier, giving up on ringing after
/// `ring`.
pub fn service_with_trunk(addr: SocketAddr, ring: Duration) -> CallService {
    service_with(trunk(addr), ring)
}
