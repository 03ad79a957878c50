#![doc = include_str!("../README.md")]
//!
//! # Data flow
//! 1. Spawning a [`CallAgent`] starts an engine ([`call_media::Agent`]) on its own thread with
//!    its own tokio runtime. It signs in to the call service and opens one WebRTC connection,
//!    before any call.
//! 2. Apps send requests as messages ([`StartCall`], [`AcceptCall`], [`HangUp`], [`Mute`], ...).
//!    [`CallSystems::Send`] turns them into engine commands over a channel; nothing blocks.
//! 3. The engine captures the microphone, encodes Opus and sends it to the service's SFU, which
//!    forwards it to the other participants; their audio is jitter-buffered, decoded and mixed
//!    into the speaker on the speaker's clock. Media never passes through the ECS.
//! 4. Facts come back over a crossbeam channel. [`CallSystems::Receive`] drains it once per frame
//!    in `PreUpdate` and updates [`Call`], [`RemoteParticipant`] and [`CallAgent`] components,
//!    writing fact messages ([`IncomingCall`], [`CallStateChanged`], ...).
//!
//! The plugin needs no window and no GPU: `MinimalPlugins + CallingPlugin` runs headless.
#![warn(missing_docs)]

mod bridge;
pub mod model;
mod video;

pub use bridge::Devices;
pub use call_media::device::{
    CaptureClock, DeviceError, DeviceId, DeviceInfo, DeviceKind, DeviceManager, Recording,
};
pub use call_media::video::pattern;
pub use call_media::{AgentConfig, AgentConnection, AgentError};
pub use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, MediaType, ParticipantState,
};
pub use model::*;

use bevy::prelude::*;

/// The plugin's system sets, to order your systems against.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallSystems {
    /// `PreUpdate`: engine facts are applied to the ECS and fact messages written.
    Receive,
    /// `PostUpdate`: this frame's request messages go to the engines.
    Send,
    /// `PostUpdate`: new decoded video frames are copied into their images.
    UploadVideo,
}

/// Calls, participants and devices as ECS entities.
///
/// Adds:
/// - the [`Devices`] resource (if absent) and the request and fact messages;
/// - an observer that starts an engine for each spawned [`CallAgent`];
/// - `receive` in `PreUpdate` ([`CallSystems::Receive`]), `send` in `PostUpdate`
///   ([`CallSystems::Send`]) and `upload_frames` in `PostUpdate` ([`CallSystems::UploadVideo`]);
/// - `AssetPlugin` and `ImagePlugin` if the app has none (headless apps), since video views are
///   `Image` assets.
#[derive(Default)]
pub struct CallingPlugin;

impl Plugin for CallingPlugin {
    fn build(&self, app: &mut App) {
        // Video views are `Image` assets; headless apps (MinimalPlugins) have no asset system yet.
        if !app.is_plugin_added::<bevy::asset::AssetPlugin>() {
            app.add_plugins(bevy::asset::AssetPlugin::default());
        }
        if !app.is_plugin_added::<bevy::image::ImagePlugin>() {
            app.add_plugins(bevy::image::ImagePlugin::default());
        }
        app.init_resource::<Devices>()
            .init_resource::<bridge::CallIndex>()
            .add_message::<StartCall>()
            .add_message::<AcceptCall>()
            .add_message::<RejectCall>()
            .add_message::<HangUp>()
            .add_message::<Mute>()
            .add_message::<Unmute>()
            .add_message::<StartVideo>()
            .add_message::<StopVideo>()
            .add_message::<StartScreenShare>()
            .add_message::<StopScreenShare>()
            .add_message::<SubscribeVideo>()
            .add_message::<UnsubscribeVideo>()
            .add_message::<AgentConnectionChanged>()
            .add_message::<IncomingCall>()
            .add_message::<CallStateChanged>()
            .add_message::<ParticipantUpdated>()
            .add_message::<ParticipantLeft>()
            .add_message::<DeviceFailed>()
            .add_message::<RequestFailed>()
            .add_observer(bridge::start_agent)
            .add_systems(PreUpdate, bridge::receive.in_set(CallSystems::Receive))
            .add_systems(PostUpdate, bridge::send.in_set(CallSystems::Send))
            .add_systems(
                PostUpdate,
                video::upload_frames.in_set(CallSystems::UploadVideo),
            );
    }
}

/// The common imports.
pub mod prelude {
    pub use crate::{
        AcceptCall, AgentConfig, AgentConnection, Call, CallAgent, CallDirection, CallEndReason,
        CallState, CallStateChanged, CallSystems, CallingPlugin, CommunicationIdentifier, Devices,
        HangUp, IncomingCall, LocalScreenShare, LocalVideoStream, MediaType, Mute,
        ParticipantState, RejectCall, RemoteParticipant, RemoteVideoStream, StartCall,
        StartScreenShare, StartVideo, StopScreenShare, StopVideo, SubscribeVideo, Unmute,
        UnsubscribeVideo, VideoView,
    };
}
