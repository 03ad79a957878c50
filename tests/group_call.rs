//! Group calls through the real stack: joining by id, promoting a 1:1 call, inviting, removing,
//! ending for everyone, the lobby, and who is heard (dominant speakers).

mod common;

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::ErrorCode;
use bevy_calling::prelude::*;
use call_service::{CallService, ServiceConfig};
use common::*;

/// Olga, an organizer, and two presenters: Pat (with `pat_mic`) and Pia.
fn trio(service: &CallService, pat_mic: Mic) -> [Client; 3] {
    [
        client_with_role(service, "olga", Mic::None, Role::Organizer),
        client(service, "pat", pat_mic),
        client(service, "pia", Mic::None),
    ]
}

/// Signs every client in.
fn signed_in(clients: &mut [&mut Client]) {
    run_until(clients, "every agent connected", |c| {
        c.iter().all(|c| c.agent().is_connected())
    });
}

/// Has `client` join the group call and returns its call entity.
fn join(client: &mut Client, group: &CallId) -> Entity {
    let agent = client.agent;
    client.app.world_mut().join_group_call(JoinGroupCall {
        agent,
        group_id: group.clone(),
        video: None,
    })
}

fn state(client: &Client, call: Entity) -> CallState {
    client.call(call).state
}

/// Waits until `clients[which]` sees `id` in `call` in `state`, and returns that participant.
fn sees(
    clients: &mut [&mut Client],
    which: usize,
    call: Entity,
    id: &CommunicationIdentifier,
    state: ParticipantState,
) -> RemoteParticipant {
    run_until(
        clients,
        &format!("client {which} sees {id} {state:?}"),
        |c| {
            c[which]
                .participant(call, id)
                .is_some_and(|p| p.state == state)
        },
    );
    clients[which].participant(call, id).expect("seen above")
}

/// Every client joins `group` in order, each once the one before is connected.
fn joined(clients: &mut [&mut Client], group: &CallId) -> Vec<Entity> {
    signed_in(clients);
    let mut calls = Vec::new();
    for i in 0..clients.len() {
        let call = join(clients[i], group);
        run_until(clients, "the joiner is connected", |c| {
            state(c[i], call) == CallState::Connected
        });
        calls.push(call);
    }
    calls
}

#[test]
fn members_join_after_the_start_and_everyone_sees_the_roster_live() {
    let service = service();
    let [mut org, mut p1, mut p2] = trio(&service, Mic::None);
    let group = CallId::new_group();
    let clients = &mut [&mut org, &mut p1, &mut p2];
    let calls = joined(clients, &group);
    let (olga, pat, pia) = (
        clients[0].user.clone(),
        clients[1].user.clone(),
        clients[2].user.clone(),
    );
    let seen = sees(clients, 0, calls[0], &pia, ParticipantState::Connected);
    assert_eq!(seen.role, Role::Presenter);
    sees(clients, 0, calls[0], &pat, ParticipantState::Connected);
    let seen = sees(clients, 2, calls[2], &olga, ParticipantState::Connected);
    assert_eq!(seen.role, Role::Organizer);
    assert_eq!(seen.display_name, "olga");
    // One hangs up: the others stay, and see why it left.
    clients[1].trigger(HangUp { call: calls[1] });
    for (which, call) in [(0, calls[0]), (2, calls[2])] {
        let left = sees(clients, which, call, &pat, ParticipantState::Disconnected);
        assert_eq!(left.end_reason, Some(CallEndReason::REMOTE_HANG_UP));
    }
    run_for(clients, Duration::from_millis(300));
    assert_eq!(state(clients[0], calls[0]), CallState::Connected);
    assert_eq!(state(clients[2], calls[2]), CallState::Connected);
}

/// Updates every client until `clients[listener]` has played `total` more samples, and returns
/// them.
fn hear(clients: &mut [&mut Client], listener: usize, total: usize) -> Vec<f32> {
    let from = clients[listener].speaker.len();
    run_until(clients, "audio to play", |c| {
        c[listener].speaker.len() >= from + total
    });
    clients[listener].speaker.samples_from(from)
}

/// Splits `samples` into 20 ms windows and returns the quietest window's RMS.
fn quietest_window(samples: &[f32]) -> f32 {
    samples
        .chunks_exact(960)
        .map(|w| energy(w).sqrt())
        .fold(f32::INFINITY, f32::min)
}

#[test]
fn a_one_to_one_call_promoted_to_a_group_keeps_its_audio_without_a_gap() {
    let service = service();
    let mut a = client(&service, "alice", Mic::Tone);
    let mut b = client(&service, "bob", Mic::Tone);
    let mut c = client(&service, "carol", Mic::Speech);
    let (a_call, _) = connected_call(&mut a, &mut b);
    signed_in(&mut [&mut c]);
    // Let playout settle, then listen across the whole promotion.
    listen(&mut a, &mut b, 48_000, 0);
    let from = b.speaker.len();
    let carol = c.user.clone();
    a.trigger(AddParticipants {
        call: a_call,
        targets: vec![carol.clone()],
    });
    let clients = &mut [&mut a, &mut b, &mut c];
    let (c_call, _) = incoming(clients, 2);
    clients[2].trigger(AcceptCall { call: c_call });
    run_until(clients, "carol connected", |c| {
        state(c[2], c_call) == CallState::Connected
    });
    sees(clients, 0, a_call, &carol, ParticipantState::Connected);
    run_for(clients, Duration::from_millis(1500));
    let heard = clients[1].speaker.samples_from(from);
    assert!(heard.len() > 48_000, "{} samples", heard.len());
    let quietest = quietest_window(&heard);
    // The tone's RMS is 0.3/√2 ≈ 0.21: a gap would show as a silent window.
    assert!(
        quietest > 0.02,
        "B's tone from A dropped to {quietest} RMS while C joined"
    );
    // All three hear each other: C hears the tones, A hears C's speech.
    let to_c = hear(clients, 2, 48_000);
    assert!(energy(&to_c) > 0.01, "C hears {}", energy(&to_c));
    let to_a = hear(clients, 0, 2 * 48_000);
    assert!(energy(&to_a) > 0.01, "A hears {}", energy(&to_a));
}

#[test]
fn an_invitation_is_accepted_by_one_and_declined_by_another() {
    let service = service();
    let [mut org, mut p1, mut p2] = trio(&service, Mic::None);
    let group = CallId::new_group();
    let org_call = joined(&mut [&mut org], &group)[0];
    let (pat, pia) = (p1.user.clone(), p2.user.clone());
    let clients = &mut [&mut org, &mut p1, &mut p2];
    signed_in(clients);
    clients[0].trigger(AddParticipants {
        call: org_call,
        targets: vec![pat.clone(), pia.clone()],
    });
    let (p1_call, rung) = incoming(clients, 1);
    assert_eq!(rung.id, group, "the invitation is for the group call");
    let (p2_call, _) = incoming(clients, 2);
    sees(clients, 0, org_call, &pat, ParticipantState::Connecting);
    clients[1].trigger(AcceptCall { call: p1_call });
    clients[2].trigger(RejectCall { call: p2_call });
    sees(clients, 0, org_call, &pat, ParticipantState::Connected);
    let declined = sees(clients, 0, org_call, &pia, ParticipantState::Disconnected);
    assert_eq!(declined.end_reason, Some(CallEndReason::DECLINED));
    run_until(clients, "pat connected", |c| {
        state(c[1], p1_call) == CallState::Connected
    });
}

#[test]
fn an_unanswered_invitation_ends_with_no_answer_on_both_sides() {
    let service = CallService::start(ServiceConfig {
        ring_timeout: Duration::from_secs(1),
        ..ServiceConfig::default()
    })
    .expect("service starts");
    let [mut org, mut p1, _] = trio(&service, Mic::None);
    let group = CallId::new_group();
    let org_call = joined(&mut [&mut org], &group)[0];
    let pat = p1.user.clone();
    let clients = &mut [&mut org, &mut p1];
    signed_in(clients);
    clients[0].trigger(AddParticipants {
        call: org_call,
        targets: vec![pat.clone()],
    });
    let (p1_call, _) = incoming(clients, 1);
    // Nobody answers: after the ring timeout both sides hear why.
    let left = sees(clients, 0, org_call, &pat, ParticipantState::Disconnected);
    assert_eq!(left.end_reason, Some(CallEndReason::NO_ANSWER));
    assert_eq!(ended(clients, 1, p1_call), CallEndReason::NO_ANSWER);
    assert_eq!(state(clients[0], org_call), CallState::Connected);
}

#[test]
fn only_an_organizer_removes_and_everyone_sees_the_reason() {
    let service = service();
    let [mut org, mut p1, mut p2] = trio(&service, Mic::None);
    let group = CallId::new_group();
    let clients = &mut [&mut org, &mut p1, &mut p2];
    let calls = joined(clients, &group);
    let pia = clients[2].user.clone();
    sees(clients, 1, calls[1], &pia, ParticipantState::Connected);
    clients[1].trigger(RemoveParticipant {
        call: calls[1],
        participant: pia.clone(),
    });
    let mut refusal = None;
    run_until(clients, "the presenter's remove is refused", |c| {
        refusal = c[1]
            .app
            .world_mut()
            .resource_mut::<Messages<RequestFailed>>()
            .drain()
            .next();
        refusal.is_some()
    });
    assert!(
        matches!(
            refusal.map(|r| r.error),
            Some(RequestError::Refused {
                code: ErrorCode::Forbidden,
                ..
            })
        ),
        "a presenter's remove is refused as forbidden"
    );
    assert_eq!(state(clients[2], calls[2]), CallState::Connected);
    clients[0].trigger(RemoveParticipant {
        call: calls[0],
        participant: pia.clone(),
    });
    assert_eq!(ended(clients, 2, calls[2]), CallEndReason::REMOVED);
    for which in [0, 1] {
        let left = sees(
            clients,
            which,
            calls[which],
            &pia,
            ParticipantState::Disconnected,
        );
        assert_eq!(left.end_reason, Some(CallEndReason::REMOVED));
    }
}

#[test]
fn an_organizer_hangs_up_for_everyone() {
    let service = service();
    let [mut org, mut p1, mut p2] = trio(&service, Mic::None);
    let group = CallId::new_group();
    let clients = &mut [&mut org, &mut p1, &mut p2];
    let calls = joined(clients, &group);
    clients[0].trigger(HangUpForEveryone { call: calls[0] });
    for which in [1, 2] {
        assert_eq!(
            ended(clients, which, calls[which]),
            CallEndReason::ENDED_FOR_EVERYONE
        );
    }
    assert_eq!(ended(clients, 0, calls[0]), CallEndReason::LOCAL_HANG_UP);
}

#[test]
fn the_lobby_holds_joiners_until_the_organizer_admits_or_rejects_them() {
    let service = service();
    let [mut org, mut p1, mut p2] = trio(&service, Mic::Speech);
    let group = CallId::new_group();
    let org_call = joined(&mut [&mut org], &group)[0];
    org.trigger(SetLobby {
        call: org_call,
        enabled: true,
    });
    let (pat, pia) = (p1.user.clone(), p2.user.clone());
    let clients = &mut [&mut org, &mut p1, &mut p2];
    signed_in(clients);
    let p1_call = join(clients[1], &group);
    run_until(clients, "pat waits in the lobby", |c| {
        state(c[1], p1_call) == CallState::InLobby
    });
    sees(clients, 0, org_call, &pat, ParticipantState::InLobby);
    // Nothing of a waiting participant reaches the call.
    let heard = clients[0].speaker.len();
    run_for(clients, Duration::from_secs(1));
    let quiet = energy(&clients[0].speaker.samples_from(heard));
    assert!(quiet < 1e-6, "the organizer heard {quiet} from the lobby");
    clients[0].trigger(AdmitParticipant {
        call: org_call,
        participant: pat.clone(),
    });
    run_until(clients, "pat admitted", |c| {
        state(c[1], p1_call) == CallState::Connected
    });
    sees(clients, 0, org_call, &pat, ParticipantState::Connected);
    let admitted = hear(clients, 0, 2 * 48_000);
    assert!(
        energy(&admitted) > 0.002,
        "the organizer hears pat once admitted"
    );

    let p2_call = join(clients[2], &group);
    run_until(clients, "pia waits in the lobby", |c| {
        state(c[2], p2_call) == CallState::InLobby
    });
    sees(clients, 0, org_call, &pia, ParticipantState::InLobby);
    clients[0].trigger(RejectParticipant {
        call: org_call,
        participant: pia.clone(),
    });
    assert_eq!(ended(clients, 2, p2_call), CallEndReason::LOBBY_REJECTED);
    let left = sees(clients, 0, org_call, &pia, ParticipantState::Disconnected);
    assert_eq!(left.end_reason, Some(CallEndReason::LOBBY_REJECTED));
}

/// The dominant speakers `client` was told for `call`.
fn dominant(client: &Client, call: Entity) -> Vec<CommunicationIdentifier> {
    client
        .app
        .world()
        .get::<DominantSpeakers>(call)
        .map(|d| d.speakers.clone())
        .unwrap_or_default()
}

#[test]
fn six_members_talking_in_turn_are_each_heard_by_all_and_lead_the_dominant_speakers() {
    let service = service();
    let mut members: Vec<Client> = ["ann", "ben", "cat", "dan", "eve", "fay"]
        .iter()
        .map(|name| client(&service, name, Mic::Speech))
        .collect();
    let group = CallId::new_group();
    let mut refs: Vec<&mut Client> = members.iter_mut().collect();
    let clients = &mut refs[..];
    let calls = joined(clients, &group);
    for (c, &call) in clients.iter_mut().zip(&calls) {
        c.trigger(Mute { call });
    }
    run_for(clients, Duration::from_secs(1));
    for speaker in 0..clients.len() {
        clients[speaker].trigger(Unmute {
            call: calls[speaker],
        });
        let who = clients[speaker].user.clone();
        run_until(clients, &format!("everyone names {who} first"), |c| {
            c.iter()
                .zip(&calls)
                .all(|(c, &call)| dominant(c, call).first() == Some(&who))
        });
        let marks: Vec<usize> = clients.iter().map(|c| c.speaker.len()).collect();
        run_for(clients, Duration::from_millis(1500));
        for (listener, c) in clients.iter().enumerate() {
            let e = energy(&c.speaker.samples_from(marks[listener]));
            if listener == speaker {
                assert!(e < 1e-6, "{who} heard their own voice: {e}");
            } else {
                assert!(e > 0.002, "{} did not hear {who}: {e}", c.user);
            }
        }
        clients[speaker].trigger(Mute {
            call: calls[speaker],
        });
    }
}

#[test]
fn each_voice_plays_from_where_the_listener_placed_it() {
    let service = service();
    let mut lee = client(&service, "lee", Mic::Tone);
    let mut ray = client(&service, "ray", Mic::Tone);
    let mut lia = client(&service, "lia", Mic::None);
    let group = CallId::new_group();
    let clients = &mut [&mut lee, &mut ray, &mut lia];
    let calls = joined(clients, &group);
    // Lia hears Lee only on the left and Ray only on the right.
    for (talker, placement) in [(0, (1.0, 0.0)), (1, (0.0, 1.0))] {
        let id = clients[talker].user.clone();
        sees(clients, 2, calls[2], &id, ParticipantState::Connected);
        let world = clients[2].app.world_mut();
        let entity = world
            .query::<(Entity, &RemoteParticipant)>()
            .iter(world)
            .find(|(_, p)| p.identifier == id)
            .map(|(e, _)| e)
            .expect("the talker's participant entity");
        world.entity_mut(entity).insert(VoicePlacement {
            left: placement.0,
            right: placement.1,
        });
    }
    for (talker, quiet) in [(0, 1), (1, 0)] {
        clients[quiet].trigger(Mute { call: calls[quiet] });
        clients[talker].trigger(Unmute {
            call: calls[talker],
        });
        run_for(clients, Duration::from_secs(1));
        let mark = clients[2].speaker.len();
        run_for(clients, Duration::from_millis(1500));
        let (left, right) = clients[2].speaker.channels_from(mark);
        let (left, right) = (energy(&left), energy(&right));
        let (near, far) = if talker == 0 {
            (left, right)
        } else {
            (right, left)
        };
        let who = &clients[talker].user;
        assert!(
            near > 0.005,
            "{who} is not heard on their side: {left} / {right}"
        );
        assert!(
            far < near / 100.0,
            "{who} leaks to the other side: {left} / {right}"
        );
    }
}
