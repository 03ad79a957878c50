//! The only code that touches the engines' channels: it starts an engine per [`CallAgent`] on the
//! app's one [`MediaRuntime`], applies request events as they are triggered ([`requests`]), and
//! drains each engine's facts into the ECS once per frame ([`receive`]). Indexes from engine ids
//! to entities follow the entities: observers clean them when calls and agents go.

mod devices;
mod receive;
mod requests;
mod voices;

pub(crate) use devices::{
    select_device, set_voice_processing, start_meter, stop_meter, sync_devices, update_levels,
};
pub(crate) use receive::receive;
pub(crate) use requests::{add_request_observers, group_call, outgoing_call};
pub(crate) use voices::{place_voices, unplace_voice};

use std::collections::HashMap;
use std::task::Waker;

use bevy::prelude::*;
use call_media::device::DeviceManager;
use call_media::{Agent, AgentConnection, AgentError, MediaRuntime};
use call_protocol::CallId;

use crate::model::{AgentConnectionChanged, Call, CallAgent, CallOf, CallState};

/// The device manager every agent opens its devices through. Add synthetic devices here before
/// spawning agents.
#[derive(Resource, Clone, Default, Deref)]
pub struct Devices(pub DeviceManager);

/// Woken whenever an agent has a new fact or a shown video stream a new picture, from the media
/// thread. An app that renders only when something changes (winit's reactive update mode)
/// inserts one that wakes its event loop, before spawning agents; agents and video views
/// created from then on wake it. Without it the plugin relies on the app updating by itself.
#[derive(Resource, Clone, Debug)]
pub struct MediaWaker(pub Waker);

/// The runtime every agent of this app runs on, started with the first agent.
#[derive(Resource)]
pub(crate) struct Runtime {
    threads: usize,
    runtime: Option<MediaRuntime>,
}

impl Runtime {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            threads,
            runtime: None,
        }
    }

    fn get(&mut self) -> std::io::Result<&MediaRuntime> {
        if self.runtime.is_none() {
            self.runtime = Some(MediaRuntime::new(self.threads)?);
        }
        Ok(self.runtime.as_ref().expect("set just above"))
    }
}

/// An agent's running engine. Dropped with the agent entity, which stops the engine; the drop
/// returns at once.
#[derive(Component)]
pub(crate) struct AgentLink(pub(crate) Agent);

/// Maps engine call ids to call entities, per agent.
#[derive(Resource, Default)]
pub(crate) struct CallIndex(pub(crate) HashMap<(Entity, CallId), Entity>);

/// Starts the engine of a newly spawned [`CallAgent`].
pub(crate) fn start_agent(
    added: On<Add, CallAgent>,
    mut agents: Query<&mut CallAgent>,
    devices: Res<Devices>,
    waker: Option<Res<MediaWaker>>,
    mut runtime: ResMut<Runtime>,
    mut commands: Commands,
    mut changed: MessageWriter<AgentConnectionChanged>,
) {
    let Ok(mut agent) = agents.get_mut(added.entity) else {
        return;
    };
    match runtime.get() {
        Ok(runtime) => {
            let link = Agent::spawn(agent.config.clone(), devices.0.clone(), runtime);
            if let Some(waker) = waker {
                link.wake_on_events(waker.0.clone());
            }
            commands
                .entity(added.entity)
                .insert((AgentLink(link), crate::model::LevelMeter::default()));
        }
        Err(e) => {
            let connection = AgentConnection::Disconnected(AgentError::Media(format!(
                "could not start the media runtime: {e}"
            )));
            agent.connection = connection.clone();
            changed.write(AgentConnectionChanged {
                agent: added.entity,
                connection,
            });
        }
    }
}

/// A call entity that goes while the call is live hangs up first, so the others see it leave
/// with a normal reason; either way its index entry goes with it.
pub(crate) fn forget_call(
    removed: On<Remove, Call>,
    calls: Query<(&Call, &CallOf)>,
    links: Query<&AgentLink>,
    mut index: ResMut<CallIndex>,
) {
    let Ok((call, of)) = calls.get(removed.entity) else {
        return;
    };
    index.0.remove(&(of.0, call.id.clone()));
    let live = !matches!(
        call.state,
        CallState::Disconnecting | CallState::Disconnected
    );
    if let (true, Ok(link)) = (live, links.get(of.0)) {
        let command = match call.state {
            CallState::Incoming => call_media::AgentCommand::RejectCall(call.id.clone()),
            _ => call_media::AgentCommand::HangUp(call.id.clone()),
        };
        // An engine that cannot take it any more is stopping, which hangs up every call anyway.
        let _ = link.0.send(command);
    }
}

/// An agent that goes takes its index entries with it (its engine hangs up as it stops).
pub(crate) fn forget_agent(removed: On<Remove, CallAgent>, mut index: ResMut<CallIndex>) {
    index.0.retain(|(agent, _), _| *agent != removed.entity);
}
