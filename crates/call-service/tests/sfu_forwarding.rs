//! Audio crosses the SFU between two str0m clients in a call, and stops when the call ends: the
//! forwarding path from a received datagram to the other party's receive slot, through real
//! ICE, DTLS and SRTP.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use call_protocol::{
    AUDIO_SLOTS, CallId, ClientMessage, CommunicationIdentifier, ServerMessage, encode,
};
use call_service::{CallService, ServiceConfig};
use common::{Ws, next};
use futures_util::SinkExt;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio_tungstenite::tungstenite::Message;

/// A signed-in client with a str0m peer: one microphone line and [`AUDIO_SLOTS`] receive lines.
struct Client {
    user: CommunicationIdentifier,
    ws: Ws,
    rtc: Rtc,
    udp: tokio::net::UdpSocket,
    local: SocketAddr,
    mic: Mid,
    slots: Vec<Mid>,
    connected: bool,
    /// The receive lines each arrived audio frame came on.
    heard: Vec<Mid>,
}

async fn send(ws: &mut Ws, message: &ClientMessage) {
    ws.send(Message::Text(encode(message).into()))
        .await
        .expect("sends");
}

/// Reads until a message matches.
async fn until(ws: &mut Ws, wanted: impl Fn(&ServerMessage) -> bool) {
    while !wanted(&next(ws).await) {}
}

impl Client {
    async fn join(service: &CallService, name: &str) -> Self {
        let user = CommunicationIdentifier::user(name).unwrap();
        let mut ws = tokio_tungstenite::connect_async(service.ws_url())
            .await
            .expect("connects")
            .0;
        let token = service.issue_token(&user, Duration::from_secs(60)).token;
        send(
            &mut ws,
            &ClientMessage::Hello {
                token,
                display_name: name.into(),
            },
        )
        .await;
        assert!(matches!(next(&mut ws).await, ServerMessage::Welcome { .. }));

        let udp = tokio::net::UdpSocket::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
            .await
            .unwrap();
        let local = udp.local_addr().unwrap();
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let slots = (0..AUDIO_SLOTS)
            .map(|_| change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None))
            .collect();
        let (offer, pending) = change.apply().expect("an offer");
        send(
            &mut ws,
            &ClientMessage::Offer {
                sdp: offer.to_sdp_string(),
            },
        )
        .await;
        let ServerMessage::Answer { sdp } = next(&mut ws).await else {
            panic!("expected an answer");
        };
        let answer = SdpAnswer::from_sdp_string(&sdp).expect("the answer parses");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("the answer is accepted");
        Self {
            user,
            ws,
            rtc,
            udp,
            local,
            mic,
            slots,
            connected: false,
            heard: Vec::new(),
        }
    }

    /// Takes every waiting datagram and does everything the peer wants done now.
    fn step(&mut self) {
        let mut buf = [0u8; 2000];
        while let Ok((n, source)) = self.udp.try_recv_from(&mut buf) {
            if let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &buf[..n]) {
                self.rtc
                    .handle_input(Input::Receive(Instant::now(), receive))
                    .expect("the client takes the datagram");
                self.drain();
            }
        }
        self.rtc
            .handle_input(Input::Timeout(Instant::now()))
            .expect("the client takes the time");
        self.drain();
    }

    fn drain(&mut self) {
        loop {
            match self.rtc.poll_output().expect("the client runs") {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    let _ = self.udp.try_send_to(&t.contents, t.destination);
                }
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::MediaData(data)) => self.heard.push(data.mid),
                Output::Event(_) => {}
            }
        }
    }

    /// Sends one 20 ms audio frame (the SFU forwards payloads it does not decode).
    fn speak(&mut self, frame: u64) {
        let Some(writer) = self.rtc.writer(self.mic) else {
            return;
        };
        let Some(pt) = writer.payload_params().next().map(|p| p.pt()) else {
            return;
        };
        let time = MediaTime::new(frame * 960, Frequency::FORTY_EIGHT_KHZ);
        writer
            .write(pt, Instant::now(), time, vec![0xF8, 0xFF, 0xFE])
            .expect("the frame is written");
        self.drain();
    }
}

/// Steps both clients every few milliseconds, `alice` speaking, until `done` holds.
async fn run(alice: &mut Client, bob: &mut Client, mut done: impl FnMut(&Client, &Client) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut frame = 0;
    let mut last_frame = Instant::now();
    while !done(alice, bob) {
        assert!(Instant::now() < deadline, "in time");
        alice.step();
        bob.step();
        if alice.connected && last_frame.elapsed() >= Duration::from_millis(20) {
            alice.speak(frame);
            frame += 1;
            last_frame = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_crosses_the_sfu_while_the_call_lasts() {
    let service = CallService::start(ServiceConfig::default()).unwrap();
    let mut alice = Client::join(&service, "alice").await;
    let mut bob = Client::join(&service, "bob").await;
    run(&mut alice, &mut bob, |a, b| a.connected && b.connected).await;

    // Not in a call: nothing reaches bob.
    run(&mut alice, &mut bob, {
        let start = Instant::now();
        move |_, _| start.elapsed() > Duration::from_millis(300)
    })
    .await;
    assert!(bob.heard.is_empty(), "no call, no audio");

    let call_id = CallId("c".into());
    send(
        &mut alice.ws,
        &ClientMessage::StartCall {
            call_id: call_id.clone(),
            targets: vec![bob.user.clone()],
        },
    )
    .await;
    until(&mut bob.ws, |m| {
        matches!(m, ServerMessage::IncomingCall { .. })
    })
    .await;
    send(
        &mut bob.ws,
        &ClientMessage::AcceptCall {
            call_id: call_id.clone(),
        },
    )
    .await;
    until(&mut alice.ws, |m| {
        matches!(m, ServerMessage::CallConnected { .. })
    })
    .await;

    run(&mut alice, &mut bob, |_, b| b.heard.len() >= 10).await;
    assert!(
        bob.heard.iter().all(|mid| *mid == bob.slots[0]),
        "alice is bob's first receive slot"
    );
    assert!(service.traffic_to(&bob.user).unwrap().audio_bytes > 0);
    assert!(alice.heard.is_empty(), "bob said nothing");

    // The call ends: audio stops.
    send(&mut alice.ws, &ClientMessage::HangUp { call_id }).await;
    until(&mut bob.ws, |m| {
        matches!(m, ServerMessage::CallEnded { .. })
    })
    .await;
    run(&mut alice, &mut bob, {
        let start = Instant::now();
        move |_, _| start.elapsed() > Duration::from_millis(200)
    })
    .await;
    let heard = bob.heard.len();
    run(&mut alice, &mut bob, {
        let start = Instant::now();
        move |_, _| start.elapsed() > Duration::from_millis(300)
    })
    .await;
    assert_eq!(bob.heard.len(), heard, "no audio after the call ended");
}
