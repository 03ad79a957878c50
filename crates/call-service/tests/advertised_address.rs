//! A service bound to every interface (`0.0.0.0`) advertises the address clients reach it at:
//! the answer's host candidate carries it with the real port, and a str0m client that only
//! knows that address completes ICE and DTLS against the wildcard-bound socket.

mod common;

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use call_protocol::{ClientMessage, CommunicationIdentifier, ServerMessage, encode};
use call_service::{CallService, ServiceConfig, ServiceError};
use common::next;
use futures_util::SinkExt;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio_tungstenite::tungstenite::Message;

const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[test]
fn binding_every_interface_needs_an_advertised_address() {
    let refused = CallService::start(ServiceConfig {
        ip: ANY,
        ..ServiceConfig::default()
    });
    assert!(matches!(refused, Err(ServiceError::UnspecifiedIp(ip)) if ip == ANY));
    let refused = CallService::start(ServiceConfig {
        advertise_ip: Some(ANY),
        ..ServiceConfig::default()
    });
    assert!(matches!(refused, Err(ServiceError::UnspecifiedIp(ip)) if ip == ANY));
}

#[test]
fn the_binary_binds_every_interface_with_advertise_ip() {
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_call-service"))
        .args([
            "serve",
            "--ip",
            "0.0.0.0",
            "--port",
            "0",
            "--media-port",
            "0",
        ])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--advertise-ip"));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_call-service"))
        .args(["serve", "--ip", "0.0.0.0", "--advertise-ip", "127.0.0.1"])
        .args(["--port", "0", "--media-port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("runs");
    let stdout = child.stdout.take().expect("piped");
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .take(2)
        .map(|l| l.expect("a line"))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines[0].starts_with("signaling: ws://127.0.0.1:"),
        "{lines:?}"
    );
    let media = lines[1]
        .strip_prefix("media:     udp 127.0.0.1:")
        .unwrap_or_else(|| panic!("the advertised media address: {lines:?}"));
    assert_ne!(media.parse::<u16>().expect("a port"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_bound_service_answers_with_and_serves_its_advertised_address() {
    let service = CallService::start(ServiceConfig {
        ip: ANY,
        advertise_ip: Some(LOOPBACK),
        ..ServiceConfig::default()
    })
    .expect("binding 0.0.0.0 works with an advertised address");
    let media = service.media_addr();
    assert_eq!(media.ip(), LOOPBACK);
    assert_ne!(media.port(), 0, "the real port, not the requested 0");
    assert_eq!(service.http_addr().ip(), ANY);
    assert!(service.ws_url().starts_with("ws://127.0.0.1:"));

    let mut ws = tokio_tungstenite::connect_async(service.ws_url())
        .await
        .expect("connects")
        .0;
    let alice = CommunicationIdentifier::user("alice").unwrap();
    let hello = ClientMessage::Hello {
        token: service.issue_token(&alice, Duration::from_secs(60)).token,
        display_name: "Alice".into(),
    };
    ws.send(Message::Text(encode(&hello).into())).await.unwrap();
    assert_eq!(next(&mut ws).await, ServerMessage::Welcome { user: alice });

    // A str0m client on loopback offers one audio line.
    let udp = tokio::net::UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
    let local = udp.local_addr().unwrap();
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let (offer, pending) = change.apply().expect("an offer");
    let offer = ClientMessage::Offer {
        sdp: offer.to_sdp_string(),
    };
    ws.send(Message::Text(encode(&offer).into())).await.unwrap();
    let ServerMessage::Answer { sdp } = next(&mut ws).await else {
        panic!("expected an answer");
    };

    let host = format!("127.0.0.1 {} typ host", media.port());
    let candidates: Vec<&str> = sdp.lines().filter(|l| l.contains("candidate:")).collect();
    assert!(
        candidates.iter().any(|l| l.contains(&host)),
        "the answer's host candidate is {host}: {candidates:?}"
    );
    assert!(
        !candidates.iter().any(|l| l.contains("0.0.0.0")),
        "the wildcard address is never advertised: {candidates:?}"
    );

    // The client, knowing only the advertised address, connects (ICE, then DTLS).
    let answer = SdpAnswer::from_sdp_string(&sdp).expect("the answer parses");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("the answer is accepted");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 2000];
    loop {
        assert!(Instant::now() < deadline, "ICE and DTLS complete in time");
        match rtc.poll_output().expect("the client runs") {
            Output::Transmit(t) => {
                udp.send_to(&t.contents, t.destination).await.unwrap();
            }
            Output::Event(Event::Connected) => break,
            Output::Event(_) => {}
            Output::Timeout(t) => {
                let wait = t
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100));
                match tokio::time::timeout(wait, udp.recv_from(&mut buf)).await {
                    Ok(Ok((n, source))) => {
                        assert_eq!(source, media, "replies come from the advertised address");
                        let receive = Receive::new(Protocol::Udp, source, local, &buf[..n])
                            .expect("a datagram str0m reads");
                        rtc.handle_input(Input::Receive(Instant::now(), receive))
                            .expect("the client takes the datagram");
                    }
                    _ => rtc
                        .handle_input(Input::Timeout(Instant::now()))
                        .expect("the client takes the time"),
                }
            }
        }
    }
}
