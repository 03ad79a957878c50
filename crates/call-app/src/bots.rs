//! Bots: agents with a synthetic camera and voice that join a group call, so one person can see
//! a full conference. They run in the app's own world (the "Add bots" button, scripts) or alone
//! without a window (`--bot`). Bots take turns to speak, so the active speaker moves.

use std::time::Duration;

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::{DeviceManager, Role};

use crate::session::{self, Connection};

/// How long each bot speaks before the next one takes over.
const TURN: Duration = Duration::from_secs(6);

/// An agent driven by this app rather than by a person.
#[derive(Component, Debug)]
pub struct Bot {
    /// Its camera, a stamped test pattern of its own.
    pub camera: DeviceId,
    /// What it should do once signed in.
    pub goal: Goal,
    /// Whether the goal was acted on.
    started: bool,
}

/// What a bot does once it is signed in.
#[derive(Clone, Debug)]
pub enum Goal {
    /// Join this group call with camera and voice.
    Join(CallId),
    /// Call this user.
    Call(CommunicationIdentifier),
    /// Wait; answer every incoming call with camera and voice.
    Answer,
}

/// Bots sign in, act on their goals, answer calls and take turns to speak.
pub struct BotPlugin;

impl Plugin for BotPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (start_bots, answer_calls, take_turns));
    }
}

/// Spawns a bot called `name` with its own 640x360 pattern camera at `fps` frames a second and
/// the speech clip as its voice.
pub fn spawn_bot(
    commands: &mut Commands,
    connection: &Connection,
    devices: &DeviceManager,
    name: &str,
    fps: u32,
    goal: Goal,
) -> Result<Entity, String> {
    let name = name.to_owned();
    let camera = devices.add_pattern_camera(&format!("{name} camera"), 640, 360, fps);
    let speech = session::speech_clip();
    let microphone = speech
        .exists()
        .then(|| devices.add_wav_microphone(&format!("{name} voice"), speech));
    let user = session::user_for(&name);
    let token = connection.token(&user, Role::Presenter, false)?;
    let agent = commands
        .spawn((
            CallAgent::new(AgentConfig {
                service_url: connection.url(),
                token,
                display_name: name,
                microphone,
                // Bots do not listen.
                speaker: None,
                voice_processing: VoiceProcessing::Off,
                ..Default::default()
            }),
            Bot {
                camera,
                goal,
                started: false,
            },
        ))
        .id();
    Ok(agent)
}

fn start_bots(mut commands: Commands, mut bots: Query<(Entity, &CallAgent, &mut Bot)>) {
    for (agent, state, mut bot) in &mut bots {
        if bot.started || !state.is_connected() {
            continue;
        }
        bot.started = true;
        let video = Some(bot.camera.clone());
        match bot.goal.clone() {
            Goal::Join(group_id) => {
                commands.join_group_call(JoinGroupCall {
                    agent,
                    group_id,
                    video,
                });
            }
            Goal::Call(target) => {
                commands.start_call(StartCall {
                    agent,
                    targets: vec![target],
                    video,
                });
            }
            Goal::Answer => {}
        }
    }
}

fn answer_calls(
    mut commands: Commands,
    mut incoming: MessageReader<IncomingCall>,
    bots: Query<&Bot>,
) {
    for call in incoming.read() {
        if let Ok(bot) = bots.get(call.agent) {
            bevy_calling::ui::accept_call(&mut commands, call.call, Some(bot.camera.clone()));
        }
    }
}

/// One bot unmuted at a time, in turn, each for [`TURN`].
fn take_turns(
    mut commands: Commands,
    time: Res<Time>,
    bots: Query<&AgentCalls, With<Bot>>,
    calls: Query<&Call>,
) {
    let live: Vec<(Entity, bool)> = bots
        .iter()
        .flat_map(|c| c.iter())
        .filter_map(|e| {
            let call = calls.get(e).ok()?;
            (call.state == CallState::Connected).then_some((e, call.is_muted))
        })
        .collect();
    if live.is_empty() {
        return;
    }
    let turn = (time.elapsed().as_secs_f64() / TURN.as_secs_f64()) as usize % live.len();
    for (k, (call, muted)) in live.into_iter().enumerate() {
        match (k == turn, muted) {
            (true, true) => commands.trigger(Unmute { call }),
            (false, false) => commands.trigger(Mute { call }),
            _ => {}
        }
    }
}

/// Prints what happens to the bots and their calls: the windowless bot's only output.
pub fn report(
    mut connections: MessageReader<AgentConnectionChanged>,
    mut changes: MessageReader<CallStateChanged>,
    mut left: MessageReader<ParticipantLeft>,
    participants: Query<&RemoteParticipant>,
) {
    for c in connections.read() {
        println!("bot: {:?}", c.connection);
    }
    for change in changes.read() {
        match change.reason {
            Some(reason) => println!("call {:?}: {reason}", change.state),
            None => println!("call {:?}", change.state),
        }
    }
    for l in left.read() {
        let name = participants
            .get(l.participant)
            .map_or_else(|_| "someone".into(), |p| p.display_name.clone());
        println!("{name} left: {}", l.reason);
    }
}
