//! The only code that touches the engine's channels: it starts an engine per [`CallAgent`],
//! drains each engine's facts into the ECS once per frame ([`receive`]), and turns request
//! messages into engine commands ([`send`]).

mod receive;
mod send;

pub(crate) use receive::receive;
pub(crate) use send::send;

use std::collections::HashMap;

use bevy::prelude::*;
use call_media::device::DeviceManager;
use call_media::{Agent, AgentConnection, AgentError};
use call_protocol::CallId;

use crate::model::{AgentConnectionChanged, CallAgent};

/// The device manager every agent opens its devices through. Add synthetic devices here before
/// spawning agents.
#[derive(Resource, Clone, Default, Deref)]
pub struct Devices(pub DeviceManager);

/// An agent's running engine. Dropped with the agent entity, which stops the engine.
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
    mut commands: Commands,
    mut changed: MessageWriter<AgentConnectionChanged>,
) {
    let Ok(mut agent) = agents.get_mut(added.entity) else {
        return;
    };
    match Agent::spawn(agent.config.clone(), devices.0.clone()) {
        Ok(link) => {
            commands.entity(added.entity).insert(AgentLink(link));
        }
        Err(e) => {
            let connection = AgentConnection::Disconnected(AgentError::Media(format!(
                "could not start the media engine: {e}"
            )));
            agent.connection = connection.clone();
            changed.write(AgentConnectionChanged {
                agent: added.entity,
                connection,
            });
        }
    }
}
