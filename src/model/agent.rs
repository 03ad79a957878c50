//! The signed-in user.

use bevy::prelude::*;
use call_media::{AgentConfig, AgentConnection};
use call_protocol::CommunicationIdentifier;

use super::CallOf;

/// A user signed in to a call service. Spawning one signs in; despawning it hangs up its calls
/// and disconnects.
#[derive(Component, Reflect, Debug)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct CallAgent {
    /// The name other participants see.
    pub display_name: String,
    /// The connection to the service, with the reason when it is down.
    #[reflect(ignore)]
    pub connection: AgentConnection,
    #[reflect(ignore)]
    pub(crate) config: AgentConfig,
}

impl CallAgent {
    /// An agent that signs in with `config` when spawned.
    pub fn new(config: AgentConfig) -> Self {
        Self {
            display_name: config.display_name.clone(),
            connection: AgentConnection::Connecting,
            config,
        }
    }

    /// The identity the service confirmed, once connected.
    pub fn user(&self) -> Option<&CommunicationIdentifier> {
        match &self.connection {
            AgentConnection::Connected { user } => Some(user),
            _ => None,
        }
    }

    /// True while signed in with media up.
    pub fn is_connected(&self) -> bool {
        matches!(self.connection, AgentConnection::Connected { .. })
    }
}

/// The calls of an agent (the other side of [`CallOf`]).
#[derive(Component, Reflect, Debug, Default)]
#[relationship_target(relationship = CallOf, linked_spawn)]
pub struct AgentCalls(Vec<Entity>);
