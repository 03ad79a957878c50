//! Phone calls through the service's SIP gateway, with sipp as the carrier: the call's states
//! follow the carrier's 180, 183 and 200, the phone's audio is the caller's own speech echoed
//! back by sipp through G.711 both ways, and failures end the call with their reasons.

mod common;

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use call_service::pstn::DialIn;
use call_service::pstn::{PstnConfig, SipCredentials};
use common::sipp::{Sipp, service_with, service_with_trunk, trunk};
use common::*;

const PHONE: &str = "4:+15550001";

/// Every call state the client was told of, in order.
#[derive(Resource, Default)]
struct Seen(Vec<CallState>);

fn record(mut changes: MessageReader<CallStateChanged>, mut seen: ResMut<Seen>) {
    seen.0.extend(changes.read().map(|c| c.state));
}

/// Alice, signed in with `mic` and her call states recorded, calling the phone.
fn call_the_phone(service: &call_service::CallService, mic: Mic) -> (Client, Entity) {
    let mut a = client(service, "alice", mic);
    a.app.init_resource::<Seen>().add_systems(Update, record);
    run_until(&mut [&mut a], "signed in", |c| c[0].agent().is_connected());
    let agent = a.agent;
    let call = a.start_call(StartCall {
        agent,
        targets: vec![PHONE.parse().unwrap()],
        video: None,
    });
    (a, call)
}

fn seen(client: &Client) -> Vec<CallState> {
    client.app.world().resource::<Seen>().0.clone()
}

/// Checks that `client` (speaking the speech clip) hears it back for `seconds`, after a second
/// to settle: sipp echoes the phone leg, so it came through the phone, coded to G.711 and back.
fn hears_own_speech_through_the_phone(client: &mut Client, seconds: usize) {
    let from = client.speaker.len();
    run_until(&mut [&mut *client], "the phone's audio", |c| {
        c[0].speaker.len() >= from + (seconds + 1) * 48_000
    });
    let heard = client.speaker.samples_from(from + 48_000);
    let e = energy(&heard);
    let corr = looped_envelope_correlation(&heard, &speech_samples());
    assert!(e > 0.002, "the phone's audio has energy {e}");
    assert!(
        corr > 0.8,
        "the phone's audio correlates {corr} with the speech sent"
    );
}

/// Hangs up both calls, each ending as a local hang-up.
fn both_hang_up(a: &mut Client, b: &mut Client, calls: [Entity; 2]) {
    for (client, call) in [(a, calls[0]), (b, calls[1])] {
        client.trigger(HangUp { call });
        assert_eq!(ended(&mut [client], 0, call), CallEndReason::LOCAL_HANG_UP);
    }
}

/// Alice and Bob, signed in, each sending a tone of their own.
fn alice_and_bob(service: &call_service::CallService) -> (Client, Client) {
    let mut a = client(service, "alice", Mic::ToneAt(ALICE_HZ));
    let mut b = client(service, "bob", Mic::ToneAt(BOB_HZ));
    run_until(&mut [&mut a, &mut b], "signed in", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });
    (a, b)
}

/// Bob answers the call ringing at him; his call entity.
fn bob_answers(a: &mut Client, b: &mut Client) -> Entity {
    let (b_call, _) = incoming(&mut [a, &mut *b], 1);
    b.trigger(AcceptCall { call: b_call });
    b_call
}

/// A service whose trunk is never dialled, with `number` on it reaching `target`.
fn dial_in_service(number: &str, target: DialIn) -> call_service::CallService {
    let nowhere = "127.0.0.1:9".parse().unwrap();
    let pstn = PstnConfig {
        dial_in: [(number.to_owned(), target)].into(),
        ..trunk(nowhere)
    };
    service_with(pstn, Duration::from_secs(20))
}

#[test]
fn a_phone_call_rings_plays_early_media_connects_and_carries_speech_both_ways() {
    let sipp = Sipp::uas("uas_progress.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, call) = call_the_phone(&service, Mic::Speech);
    let phone: CommunicationIdentifier = PHONE.parse().unwrap();
    run_until(&mut [&mut a], "the phone's early media", |c| {
        c[0].call(call).state == CallState::EarlyMedia
    });
    let early = a
        .participant(call, &phone)
        .expect("the phone is a participant");
    assert_eq!(early.state, ParticipantState::EarlyMedia);
    run_until(&mut [&mut a], "the phone to answer", |c| {
        c[0].call(call).state == CallState::Connected
    });
    assert_eq!(
        seen(&a),
        [
            CallState::Connecting,
            CallState::Ringing,
            CallState::EarlyMedia,
            CallState::Connected
        ],
        "the states follow 180, 183 and 200"
    );
    assert_eq!(
        a.participant(call, &phone).map(|p| p.state),
        Some(ParticipantState::Connected)
    );

    // sipp echoes the phone leg's RTP: Alice hears her own speech, through G.711 both ways.
    hears_own_speech_through_the_phone(&mut a, 4);

    // Hanging up sends BYE, which sipp's scenario waits for.
    a.trigger(HangUp { call });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::LOCAL_HANG_UP);
    sipp.finished();
}

#[test]
fn a_busy_phone_ends_the_call_as_busy() {
    let sipp = Sipp::uas("uas_busy.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, call) = call_the_phone(&service, Mic::Speech);
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::BUSY);
    assert!(!seen(&a).contains(&CallState::Connected));
    sipp.finished();
}

#[test]
fn a_phone_that_rings_unanswered_is_cancelled_and_the_call_ends_as_no_answer() {
    let sipp = Sipp::uas("uas_noanswer.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(2));
    let (mut a, call) = call_the_phone(&service, Mic::Speech);
    run_until(&mut [&mut a], "the phone to ring", |c| {
        c[0].call(call).state == CallState::Ringing
    });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::NO_ANSWER);
    // sipp's scenario passes only if the gateway sent CANCEL and took the 487.
    sipp.finished();
}

/// Alice's and Bob's tones.
const ALICE_HZ: f32 = 440.0;
const BOB_HZ: f32 = 1_000.0;

/// Waits until both see the phone connected, then checks that all three hear each other:
/// sipp sends back what the phone hears, so each one's own tone (which the SFU never sends
/// back to its sender) reaches them only through the phone, mixed with the other's.
fn all_three_hear_each_other(a: &mut Client, b: &mut Client, calls: [Entity; 2]) {
    let phone: CommunicationIdentifier = PHONE.parse().unwrap();
    run_until(
        &mut [&mut *a, &mut *b],
        "the phone connected for both",
        |c| {
            (0..2).all(|i| {
                c[i].participant(calls[i], &phone)
                    .is_some_and(|p| p.state == ParticipantState::Connected)
            })
        },
    );
    let from = [a.speaker.len(), b.speaker.len()];
    run_until(&mut [&mut *a, &mut *b], "three seconds at both", |c| {
        (0..2).all(|i| c[i].speaker.len() >= from[i] + 3 * 48_000)
    });
    for (who, client, from) in [("Alice", a, from[0]), ("Bob", b, from[1])] {
        let heard = client.speaker.samples_from(from + 48_000);
        for (tone, hz) in [("Alice's", ALICE_HZ), ("Bob's", BOB_HZ)] {
            let amplitude = tone_amplitude(&heard, hz);
            assert!(amplitude > 0.05, "{who} hears {tone} tone at {amplitude}");
        }
    }
}

#[test]
fn a_group_call_of_two_dials_out_to_a_phone_and_all_three_hear_each_other() {
    let sipp = Sipp::uas("uas_progress.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, mut b) = alice_and_bob(&service);
    let group = CallId::new_group();
    let calls = [&mut a, &mut b].map(|c| {
        let agent = c.agent;
        c.app.world_mut().join_group_call(JoinGroupCall {
            agent,
            group_id: group.clone(),
            video: None,
        })
    });
    run_until(&mut [&mut a, &mut b], "both in the group call", |c| {
        (0..2).all(|i| c[i].call(calls[i]).state == CallState::Connected)
    });
    a.trigger(AddParticipants {
        call: calls[0],
        targets: vec![PHONE.parse().unwrap()],
    });
    all_three_hear_each_other(&mut a, &mut b, calls);
    // The group goes on while people are in it; its phone is hung up when they leave.
    both_hang_up(&mut a, &mut b, calls);
    sipp.finished();
}

#[test]
fn a_one_to_one_phone_call_becomes_a_group_when_someone_is_added() {
    let sipp = Sipp::uas("uas_progress.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, a_call) = call_the_phone(&service, Mic::ToneAt(ALICE_HZ));
    let mut b = client(&service, "bob", Mic::ToneAt(BOB_HZ));
    run_until(&mut [&mut a], "the phone to answer", |c| {
        c[0].call(a_call).state == CallState::Connected
    });
    run_until(&mut [&mut b], "Bob signed in", |c| {
        c[0].agent().is_connected()
    });
    let bob = b.user.clone();
    a.trigger(AddParticipants {
        call: a_call,
        targets: vec![bob],
    });
    let b_call = bob_answers(&mut a, &mut b);
    all_three_hear_each_other(&mut a, &mut b, [a_call, b_call]);
    both_hang_up(&mut a, &mut b, [a_call, b_call]);
    sipp.finished();
}

#[test]
fn a_phone_dials_in_to_a_user_who_answers_and_they_hear_each_other() {
    let bob_id = CommunicationIdentifier::user("bob").unwrap();
    let service = dial_in_service("+15550002", DialIn::User(bob_id));
    let mut b = client(&service, "bob", Mic::Speech);
    run_until(&mut [&mut b], "Bob signed in", |c| {
        c[0].agent().is_connected()
    });
    let gateway = service.sip_addr().expect("the gateway's address");
    let sipp = Sipp::uac(
        "uac_dial_in.xml",
        gateway,
        "+15550002",
        Duration::from_secs(6),
    );
    let (b_call, _) = incoming(&mut [&mut b], 0);
    let carol: CommunicationIdentifier = "4:+15550123".parse().unwrap();
    let caller = b.participant(b_call, &carol).expect("the phone calls");
    assert_eq!(caller.display_name, "Carol");
    b.trigger(AcceptCall { call: b_call });
    run_until(&mut [&mut b], "Bob connected", |c| {
        c[0].call(b_call).state == CallState::Connected
    });
    // sipp echoes the phone leg: Bob hears his own speech through the phone.
    hears_own_speech_through_the_phone(&mut b, 3);
    // The phone hangs up (BYE after six seconds).
    assert_eq!(
        ended(&mut [&mut b], 0, b_call),
        CallEndReason::REMOTE_HANG_UP
    );
    sipp.finished();
}

/// Every DTMF fact the client was told of: who, and which digits.
#[derive(Resource, Default)]
struct Digits(Vec<(CommunicationIdentifier, String)>);

fn record_digits(mut received: MessageReader<DtmfReceived>, mut digits: ResMut<Digits>) {
    digits
        .0
        .extend(received.read().map(|d| (d.from.clone(), d.tones.clone())));
}

#[test]
fn digits_sent_reach_the_phone_and_the_phones_digits_arrive_as_facts() {
    let sipp = Sipp::uas("uas_dtmf.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, call) = call_the_phone(&service, Mic::None);
    a.app
        .init_resource::<Digits>()
        .add_systems(Update, record_digits);
    run_until(&mut [&mut a], "the phone to answer", |c| {
        c[0].call(call).state == CallState::Connected
    });
    a.trigger(SendDtmf {
        call,
        tones: "#9".into(),
    });
    // sipp presses 1 (its own RFC 4733 capture), and echoes the digits it gets back to us.
    let phone: CommunicationIdentifier = PHONE.parse().unwrap();
    run_until(&mut [&mut a], "1 from the phone, then # and 9 back", |c| {
        let digits = &c[0].app.world().resource::<Digits>().0;
        let tones: String = digits.iter().map(|(_, t)| t.as_str()).collect();
        tones.contains('1') && tones.contains("#9")
    });
    let digits = &a.app.world().resource::<Digits>().0;
    assert!(digits.iter().all(|(from, _)| *from == phone), "{digits:?}");
    a.trigger(HangUp { call });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::LOCAL_HANG_UP);
    sipp.finished();
}

/// Calls the phone through sipp's authenticating trunk with `password`.
fn call_with_password(password: &str) -> (Sipp, call_service::CallService, Client, Entity) {
    let sipp = Sipp::uas("uas_auth.xml");
    let credentials = SipCredentials {
        username: "gateway".into(),
        password: password.into(),
    };
    let pstn = PstnConfig {
        credentials: Some(credentials),
        ..trunk(sipp.addr)
    };
    let service = service_with(pstn, Duration::from_secs(20));
    let (a, call) = call_the_phone(&service, Mic::None);
    (sipp, service, a, call)
}

#[test]
fn a_trunk_that_asks_for_credentials_gets_them_and_refuses_wrong_ones() {
    // sipp verifies the digest of the INVITE sent again after its 401.
    let (sipp, _service, mut a, call) = call_with_password("s3cret");
    run_until(&mut [&mut a], "the phone to answer", |c| {
        c[0].call(call).state == CallState::Connected
    });
    a.trigger(HangUp { call });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::LOCAL_HANG_UP);
    sipp.finished();

    let (sipp, _service, mut a, call) = call_with_password("wrong");
    let refused = CallEndReason::new(403, CallEndReason::PHONE_STATUS_SUBCODE);
    assert_eq!(ended(&mut [&mut a], 0, call), refused);
    sipp.finished();
}

/// A SIP request from `from` to the gateway at `to`, without a body.
fn request(
    method: &str,
    number: &str,
    from: std::net::SocketAddr,
    to: std::net::SocketAddr,
) -> String {
    format!(
        "{method} sip:{number}@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{method}-probe\r\n\
         From: <sip:probe@{from}>;tag=probe\r\nTo: <sip:{number}@{to}>\r\nCall-ID: {method}-probe\r\n\
         CSeq: 1 {method}\r\nContact: <sip:probe@{from}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The status of the first final response `socket` receives.
fn final_status(socket: &std::net::UdpSocket) -> u16 {
    let mut buf = [0u8; 4096];
    loop {
        let n = socket
            .recv(&mut buf)
            .expect("a response before the timeout");
        let text = String::from_utf8_lossy(&buf[..n]);
        let code = text
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok());
        if let Some(code) = code.filter(|&code| code >= 200) {
            return code;
        }
    }
}

#[test]
fn bad_sip_is_answered_or_dropped_and_the_gateway_goes_on() {
    let sipp = Sipp::uas("uas_busy.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let gateway = service.sip_addr().expect("the gateway's address");
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let from = probe.local_addr().unwrap();
    // Garbage, a request without its headers, a datagram that is all header: dropped.
    for junk in [
        &b"\x00\xff\xfe not SIP at all"[..],
        b"INVITE sip:+15550002@127.0.0.1 SIP/2.0\r\n\r\n",
        &[b'A'; 1400][..],
    ] {
        probe.send_to(junk, gateway).unwrap();
    }
    // Well-formed requests are answered: OPTIONS, and an INVITE to a number nobody has.
    probe
        .send_to(
            request("OPTIONS", "+15550002", from, gateway).as_bytes(),
            gateway,
        )
        .unwrap();
    assert_eq!(final_status(&probe), 200);
    probe
        .send_to(
            request("INVITE", "+19999999", from, gateway).as_bytes(),
            gateway,
        )
        .unwrap();
    assert_eq!(final_status(&probe), 404);
    // And the gateway still places calls.
    let (mut a, call) = call_the_phone(&service, Mic::None);
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::BUSY);
    sipp.finished();
}

#[test]
fn a_call_placed_to_a_user_and_a_phone_at_once_reaches_both() {
    let sipp = Sipp::uas("uas_progress.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, mut b) = alice_and_bob(&service);
    let agent = a.agent;
    let a_call = a.start_call(StartCall {
        agent,
        targets: vec![b.user.clone(), PHONE.parse().unwrap()],
        video: None,
    });
    let b_call = bob_answers(&mut a, &mut b);
    all_three_hear_each_other(&mut a, &mut b, [a_call, b_call]);
    both_hang_up(&mut a, &mut b, [a_call, b_call]);
    sipp.finished();
}

#[test]
fn a_phone_dials_in_to_a_group_call_and_joins_it() {
    let group = CallId::new_group();
    let service = dial_in_service("+15550003", DialIn::Group(group.clone()));
    let mut a = client(&service, "alice", Mic::Speech);
    run_until(&mut [&mut a], "signed in", |c| c[0].agent().is_connected());
    let agent = a.agent;
    let call = a.app.world_mut().join_group_call(JoinGroupCall {
        agent,
        group_id: group,
        video: None,
    });
    run_until(&mut [&mut a], "in the group call", |c| {
        c[0].call(call).state == CallState::Connected
    });
    let gateway = service.sip_addr().expect("the gateway's address");
    let sipp = Sipp::uac(
        "uac_dial_in.xml",
        gateway,
        "+15550003",
        Duration::from_secs(6),
    );
    // The phone joins at once (nobody answers a group call), and sipp echoes what it hears:
    // Alice hears her own speech through the phone.
    let carol: CommunicationIdentifier = "4:+15550123".parse().unwrap();
    run_until(&mut [&mut a], "the phone in the group call", |c| {
        c[0].participant(call, &carol)
            .is_some_and(|p| p.state == ParticipantState::Connected)
    });
    hears_own_speech_through_the_phone(&mut a, 3);
    // The phone hangs up; the group call goes on without it.
    run_until(&mut [&mut a], "the phone to leave", |c| {
        c[0].participant(call, &carol)
            .is_some_and(|p| p.state == ParticipantState::Disconnected)
    });
    let left = a.participant(call, &carol).and_then(|p| p.end_reason);
    assert_eq!(left, Some(CallEndReason::REMOTE_HANG_UP));
    assert_eq!(a.call(call).state, CallState::Connected);
    sipp.finished();
}
