//! Phone calls through the service's SIP gateway, with sipp as the carrier: the call's states
//! follow the carrier's 180, 183 and 200, the phone's audio is the caller's own speech echoed
//! back by sipp through G.711 both ways, and failures end the call with their reasons.

mod common;

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use common::sipp::{Sipp, service_with_trunk};
use common::*;

const PHONE: &str = "4:+15550001";

/// Every call state the client was told of, in order.
#[derive(Resource, Default)]
struct Seen(Vec<CallState>);

fn record(mut changes: MessageReader<CallStateChanged>, mut seen: ResMut<Seen>) {
    seen.0.extend(changes.read().map(|c| c.state));
}

/// A signed-in client whose call states are recorded, calling the phone.
fn call_the_phone(service: &call_service::CallService) -> (Client, Entity) {
    let mut a = client(service, "alice", Mic::Speech);
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

#[test]
fn a_phone_call_rings_plays_early_media_connects_and_carries_speech_both_ways() {
    let sipp = Sipp::uas("uas_progress.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, call) = call_the_phone(&service);
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
    let from = a.speaker.len();
    run_until(&mut [&mut a], "four seconds of the phone", |c| {
        c[0].speaker.len() >= from + 5 * 48_000
    });
    let heard = a.speaker.samples_from(from + 48_000);
    let e = energy(&heard);
    let corr = looped_envelope_correlation(&heard, &speech_samples());
    assert!(e > 0.002, "the phone's audio has energy {e}");
    assert!(corr > 0.8, "the echo correlates {corr} with Alice's speech");

    // Hanging up sends BYE, which sipp's scenario waits for.
    a.trigger(HangUp { call });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::LOCAL_HANG_UP);
    sipp.finished();
}

#[test]
fn a_busy_phone_ends_the_call_as_busy() {
    let sipp = Sipp::uas("uas_busy.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(20));
    let (mut a, call) = call_the_phone(&service);
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::BUSY);
    assert!(!seen(&a).contains(&CallState::Connected));
    sipp.finished();
}

#[test]
fn a_phone_that_rings_unanswered_is_cancelled_and_the_call_ends_as_no_answer() {
    let sipp = Sipp::uas("uas_noanswer.xml");
    let service = service_with_trunk(sipp.addr, Duration::from_secs(2));
    let (mut a, call) = call_the_phone(&service);
    run_until(&mut [&mut a], "the phone to ring", |c| {
        c[0].call(call).state == CallState::Ringing
    });
    assert_eq!(ended(&mut [&mut a], 0, call), CallEndReason::NO_ANSWER);
    // sipp's scenario passes only if the gateway sent CANCEL and took the 487.
    sipp.finished();
}
