//! A call between hosts: the service and two clients each run in a network namespace of their
//! own, each joined by a veth pair to a bridge in a fourth, so nothing crosses loopback. The service binds
//! the wildcard address and advertises the address the clients reach it at. Each client sends
//! speech and a stamped camera and reports what arrived from the other: audio energy and
//! correlation, video PSNR.
//!
//! The three parties are this test binary again, started with `ip netns exec` and the ignored
//! test [`netns_party`], which reads its role from the environment.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::pattern;
use bevy_calling::prelude::*;
use call_service::token::TokenIssuer;
use call_service::{CallService, ServiceConfig};
use common::*;

const SECRET: &[u8] = b"calls-across-hosts";
/// The service's address on its veth pair to the switch.
const SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const ROLE: &str = "BEVY_CALLING_NETNS_ROLE";
const URL: &str = "BEVY_CALLING_NETNS_URL";
/// How long a party may run before it gives up.
const PARTY_DEADLINE: Duration = Duration::from_secs(90);

/// The namespaces and veth pairs of one run, removed when dropped (also when the test fails):
/// a switch namespace with a bridge, and the service, A and B each joined to it by a veth pair,
/// all in 10.77.0.0/24 (the service at [`SERVICE_IP`]).
struct Hosts {
    names: [String; 4],
}

impl Hosts {
    fn service(&self) -> &str {
        &self.names[1]
    }

    fn create() -> Self {
        let id = std::process::id() % 100_000;
        let names = [
            format!("bc_net_{id}"),
            format!("bc_svc_{id}"),
            format!("bc_a_{id}"),
            format!("bc_b_{id}"),
        ];
        let hosts = Self { names };
        let switch = hosts.names[0].clone();
        for ns in &hosts.names {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (k, host) in hosts.names[1..].iter().enumerate() {
            let (here, port) = (format!("bc{k}h{id}"), format!("bc{k}p{id}"));
            ip(&["link", "add", &here, "type", "veth", "peer", "name", &port]);
            ip(&["link", "set", &here, "netns", host]);
            ip(&["link", "set", &port, "netns", &switch]);
            ip(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &port, "up"]);
            let address = format!("10.77.0.{}/24", k + 1);
            ip(&["-n", host, "addr", "add", &address, "dev", &here]);
            ip(&["-n", host, "link", "set", &here, "up"]);
        }
        hosts
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("`ip` runs (./dev.sh test installs iproute2)");
    assert!(status.success(), "ip {args:?} failed (root is needed)");
}

/// A party in a namespace: this binary, running [`netns_party`].
struct Party {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Party {
    fn start(ns: &str, role: &str, url: &str) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            .args(["--ignored", "--exact", "netns_party", "--nocapture"])
            .env(ROLE, role)
            .env(URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("a party starts");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Self { child, lines }
    }

    /// The first line starting with `prefix`, with the prefix taken off.
    fn line(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref() {
            let line = line.expect("party output");
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.trim().to_owned();
            }
            assert!(!line.starts_with("FAIL"), "party failed: {line}");
        }
        panic!("the party ended without a `{prefix}` line");
    }
}

impl Drop for Party {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number out of a `key=value` report line.
fn field(report: &str, key: &str) -> f64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in `{report}`"))
}

#[test]
fn audio_and_video_flow_both_ways_between_three_hosts() {
    let hosts = Hosts::create();
    let mut service = Party::start(hosts.service(), "service", "");
    let url = service.line("READY");
    let mut callee = Party::start(&hosts.names[3], "callee", &url);
    let mut caller = Party::start(&hosts.names[2], "caller", &url);
    for (who, party) in [("caller", &mut caller), ("callee", &mut callee)] {
        let report = party.line("RESULT");
        let (e, corr, psnr) = (
            field(&report, "energy"),
            field(&report, "corr"),
            field(&report, "psnr"),
        );
        println!("{who} received: {report}");
        assert!(e > 0.002, "speech energy at the {who}: {e}");
        assert!(corr > 0.8, "envelope correlation at the {who}: {corr}");
        assert!(psnr > 30.0, "video PSNR at the {who}: {psnr:.1} dB");
    }
    // The service's media went through its advertised address, not loopback.
    assert!(url.contains(&SERVICE_IP.to_string()), "{url}");
    if let Some(stdin) = service.child.stdin.as_mut() {
        let _ = stdin.write_all(b"stop\n");
    }
}

/// One party of [`audio_and_video_flow_both_ways_between_three_hosts`]: ignored when run on its
/// own, started by that test inside a namespace.
#[test]
#[ignore = "a party of calls_across_hosts, started by it inside a network namespace"]
fn netns_party() {
    let url = std::env::var(URL).unwrap_or_default();
    match std::env::var(ROLE).as_deref() {
        Ok("service") => run_service(),
        Ok(role @ ("caller" | "callee")) => run_client(role, &url),
        _ => panic!("run by calls_across_hosts only"),
    }
}

/// Serves on the wildcard address, advertising [`SERVICE_IP`], until told to stop.
fn run_service() {
    let service = CallService::start(ServiceConfig {
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        advertise_ip: Some(IpAddr::V4(SERVICE_IP)),
        secret: Some(SECRET.to_vec()),
        ..ServiceConfig::default()
    })
    .expect("the service starts");
    println!("READY ws://{SERVICE_IP}:{}/ws", service.http_addr().port());
    // Until the test stops it (or goes away, closing stdin).
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Calls (or answers), sends speech and a camera, and reports what arrived from the other side.
fn run_client(role: &str, url: &str) {
    let (me, other) = match role {
        "caller" => ("alice", "bob"),
        _ => ("bob", "alice"),
    };
    let user = CommunicationIdentifier::user(me).expect("valid");
    let token = TokenIssuer::new(SECRET)
        .issue(&user, Duration::from_secs(600))
        .token;
    let mut client = client_at(App::new(), url, me, Mic::Speech, token);
    let camera = add_camera(&client, 320, 180, 30);
    let peer = CommunicationIdentifier::user(other).expect("valid");
    let started = Instant::now();
    let step = |client: &mut Client, what: &str, done: &mut dyn FnMut(&mut Client) -> bool| {
        while !done(client) {
            if started.elapsed() > PARTY_DEADLINE {
                let calls: Vec<_> = client.calls().into_iter().map(|(_, c)| c.state).collect();
                let agent = &client.agent().connection;
                println!(
                    "FAIL {me} timed out waiting for {what} (agent {agent:?}, calls {calls:?})"
                );
                std::process::exit(1);
            }
            client.app.update();
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    step(&mut client, "sign-in", &mut |c| c.agent().is_connected());
    let agent = client.agent;
    let call = if role == "caller" {
        // The callee signs in first; retry until it is there to be called.
        loop {
            let call = client.start_call(StartCall {
                agent,
                targets: vec![peer.clone()],
                video: Some(camera.clone()),
            });
            step(&mut client, "the call to settle", &mut |c| {
                matches!(
                    c.call(call).state,
                    CallState::Connected | CallState::Disconnected
                )
            });
            if client.call(call).state == CallState::Connected {
                break call;
            }
            client.app.world_mut().despawn(call);
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        let mut incoming = None;
        step(&mut client, "an incoming call", &mut |c| {
            incoming = c.calls().first().map(|(e, _)| *e);
            incoming.is_some()
        });
        let call = incoming.expect("incoming");
        client.trigger(AcceptCall { call });
        client.trigger(StartVideo {
            call,
            camera: camera.clone(),
        });
        call
    };
    let mut stream = None;
    step(&mut client, "the other's camera", &mut |c| {
        stream = camera_stream(c, call, &peer).filter(|s| {
            c.app
                .world()
                .get::<RemoteVideoStream>(*s)
                .is_some_and(|r| r.is_available)
        });
        stream.is_some()
    });
    let stream = stream.expect("a stream");
    client.trigger(SubscribeVideo { stream });
    let mut psnr = 0.0;
    step(&mut client, "a stamped picture", &mut |c| {
        let Some((rgba, w, h)) = view_pixels(c, stream) else {
            return false;
        };
        let Some(stamp) = pattern::read_rgba(&rgba, w, h).filter(|s| s.counter > 10) else {
            return false;
        };
        psnr = psnr_against_source(&rgba, w, h, stamp);
        true
    });
    let from = client.speaker.len();
    step(&mut client, "three seconds of audio", &mut |c| {
        c.speaker.len() >= from + 4 * 48_000
    });
    let received = client.speaker.samples_from(from + 48_000);
    let energy = energy(&received);
    let corr = looped_envelope_correlation(&received, &speech_samples());
    println!("RESULT energy={energy} corr={corr} psnr={psnr}");
    // Keep the call up while the other side measures; the test stops this process.
    step(&mut client, "the test to stop this party", &mut |_| false);
}
