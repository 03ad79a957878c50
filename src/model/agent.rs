//! The signed-in user.

use bevy::prelude::*;
use call_media::audio::VoiceProcessing;
use call_media::device::{DeviceId, DeviceKind};
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
    /// The camera a camera switch last chose.
    #[reflect(ignore)]
    pub(crate) camera: Option<DeviceId>,
    /// The screen source a screen switch last chose.
    #[reflect(ignore)]
    pub(crate) screen: Option<DeviceId>,
}

impl CallAgent {
    /// An agent that signs in with `config` when spawned.
    pub fn new(config: AgentConfig) -> Self {
        Self {
            display_name: config.display_name.clone(),
            connection: AgentConnection::Connecting,
            config,
            camera: None,
            screen: None,
        }
    }

    /// The microphone it captures in calls; `None`: it has no microphone (none chosen, or the
    /// one in use went away with no other left).
    pub fn microphone(&self) -> Option<&DeviceId> {
        self.config.microphone.as_ref()
    }

    /// The speaker it plays calls on; `None`: it has no speaker.
    pub fn speaker(&self) -> Option<&DeviceId> {
        self.config.speaker.as_ref()
    }

    /// The camera a [`crate::SelectDevice`] chose last, if any (cameras are also named per call
    /// by [`crate::StartVideo`]).
    pub fn camera(&self) -> Option<&DeviceId> {
        self.camera.as_ref()
    }

    /// Its microphone path's echo cancellation, noise suppression and gain
    /// ([`crate::SetVoiceProcessing`] changes it).
    pub fn voice_processing(&self) -> VoiceProcessing {
        self.config.voice_processing
    }

    /// The device of `kind` it uses.
    pub fn device(&self, kind: DeviceKind) -> Option<&DeviceId> {
        match kind {
            DeviceKind::Microphone => self.microphone(),
            DeviceKind::Speaker => self.speaker(),
            DeviceKind::Camera => self.camera(),
            DeviceKind::Screen => self.screen.as_ref(),
        }
    }

    pub(crate) fn set_device(&mut self, kind: DeviceKind, device: Option<DeviceId>) {
        match kind {
            DeviceKind::Microphone => self.config.microphone = device,
            DeviceKind::Speaker => self.config.speaker = device,
            DeviceKind::Camera => self.camera = device,
            DeviceKind::Screen => self.screen = device,
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
