#![doc = include_str!("../README.md")]
//!
//! # Data flow
//! 1. Spawning a [`CallAgent`] starts an engine ([`call_media::Agent`]) as a task on the app's
//!    one media runtime (shared by all its agents). It signs in to the call service and opens
//!    one WebRTC connection, before any call. Despawning it returns at once; the engine hangs
//!    up and stops by itself.
//! 2. Apps place calls with [`StartCallExt::start_call`], which returns the [`Call`] entity at
//!    once, and trigger requests as events ([`AcceptCall`], [`HangUp`], [`Mute`], ...). Each
//!    becomes an engine command over a bounded channel when it is triggered, so requests keep
//!    their order; nothing blocks.
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
#[cfg(feature = "ui")]
pub mod ui;
mod video;

pub use bridge::{Devices, MediaWaker};
pub use call_media::audio::{VoiceFrame, VoiceProcessing};
pub use call_media::device::{
    CaptureClock, DeviceError, DeviceId, DeviceInfo, DeviceKind, DeviceManager, Recording,
};
pub use call_media::stats::{IncomingVideoStats, MediaStats, StreamStats};
pub use call_media::video::pattern;
pub use call_media::{AgentConfig, AgentConnection, AgentError, CommandError};
pub use call_protocol::{
    CallEndReason, CallId, CommunicationIdentifier, ErrorCode, MediaType, ParticipantState, Role,
    StreamStopReason,
};
pub use model::*;
#[cfg(feature = "render")]
pub use video::share_view::{ShareableView, ViewSource};

use bevy::prelude::*;

/// The plugin's system sets, to order your systems against.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallSystems {
    /// `PreUpdate`: engine facts are applied to the ECS and fact messages written; device
    /// entities follow the device list; level meters update.
    Receive,
    /// `PostUpdate`: new decoded video frames are copied into their images.
    UploadVideo,
}

/// Calls, participants and devices as ECS entities.
///
/// Adds:
/// - the [`Devices`] resource (if absent), the fact messages, and one observer per request
///   event (each sends its engine command when triggered);
/// - observers that start an engine for each spawned [`CallAgent`], and that hang up a live
///   [`Call`] that is despawned;
/// - `receive` in `PreUpdate` ([`CallSystems::Receive`]) and `upload_frames` in `PostUpdate`
///   ([`CallSystems::UploadVideo`]);
/// - with the `render` feature, the screen sources of `ShareableView`s and their readbacks;
/// - in [`Plugin::finish`], `AssetPlugin` and `ImagePlugin` if no other plugin added them
///   (headless apps), since video views are `Image` assets. Adding it before or after
///   `DefaultPlugins` works the same; an app driven by hand calls `app.finish()` before
///   `app.update()`, as for any plugin.
#[derive(Clone, Debug)]
pub struct CallingPlugin {
    /// Worker threads of the one async runtime all agents of the app share (default 2).
    pub media_threads: usize,
}

impl Default for CallingPlugin {
    fn default() -> Self {
        Self { media_threads: 2 }
    }
}

impl Plugin for CallingPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Devices>()
            .init_resource::<bridge::CallIndex>()
            .insert_resource(bridge::Runtime::new(self.media_threads))
            .add_message::<AgentConnectionChanged>()
            .add_message::<IncomingCall>()
            .add_message::<CallStateChanged>()
            .add_message::<ParticipantUpdated>()
            .add_message::<ParticipantLeft>()
            .add_message::<DeviceFailed>()
            .add_message::<RequestFailed>()
            .add_message::<DeviceAdded>()
            .add_message::<DeviceRemoved>()
            .add_message::<DeviceSwitched>()
            .add_message::<VideoStopped>()
            .add_message::<DtmfReceived>()
            .add_observer(bridge::start_agent)
            .add_observer(bridge::select_device)
            .add_observer(bridge::set_voice_processing)
            .add_observer(bridge::start_meter)
            .add_observer(bridge::stop_meter)
            .add_observer(bridge::forget_call)
            .add_observer(bridge::forget_agent)
            .add_observer(bridge::unplace_voice)
            .add_systems(
                PreUpdate,
                (bridge::receive, bridge::sync_devices, bridge::update_levels)
                    .chain()
                    .in_set(CallSystems::Receive),
            )
            .add_systems(
                PostUpdate,
                (
                    video::upload_frames.in_set(CallSystems::UploadVideo),
                    bridge::place_voices,
                ),
            );
        bridge::add_request_observers(app);
        #[cfg(feature = "render")]
        app.add_observer(video::share_view::add_view_source)
            .add_observer(video::share_view::remove_view_source)
            .add_systems(PostUpdate, video::share_view::request_readbacks);
    }

    fn finish(&self, app: &mut App) {
        // Video views are `Image` assets. Checked here, after every plugin was built, so that
        // `DefaultPlugins` added after this plugin still brings its own.
        if !app.is_plugin_added::<bevy::asset::AssetPlugin>() {
            app.add_plugins(bevy::asset::AssetPlugin::default());
        }
        if !app.is_plugin_added::<bevy::image::ImagePlugin>() {
            app.add_plugins(bevy::image::ImagePlugin::default());
        }
    }
}

/// The common imports.
pub mod prelude {
    pub use crate::{
        AcceptCall, AgentCalls, AgentConfig, AgentConnection, AgentConnectionChanged, AgentError,
        Call, CallAgent, CallDirection, CallEndReason, CallOf, CallState, CallStateChanged,
        CallSystems, CallingPlugin, CommunicationIdentifier, Device, DeviceAdded, DeviceFailed,
        DeviceId, DeviceKind, DeviceRemoved, DeviceSwitchReason, DeviceSwitched, Devices, HangUp,
        Hold, IncomingCall, LevelMeter, LocalScreenShare, LocalVideoStream, MediaType, Mute,
        ParticipantLeft, ParticipantOf, ParticipantState, ParticipantUpdated, Participants,
        RejectCall, RemoteParticipant, RemoteVideoStream, RequestError, RequestFailed, Resume,
        SelectDevice, SetVoiceProcessing, StartCall, StartCallExt, StartScreenShare, StartVideo,
        StopScreenShare, StopVideo, StreamOf, StreamStopReason, Streams, SubscribeVideo, Unmute,
        UnsubscribeVideo, VideoStopped, VideoView, VoicePlacement, VoiceProcessing,
    };
    pub use crate::{
        AddParticipants, AdmitParticipant, CallId, CallStats, DominantSpeakers, DtmfReceived,
        HangUpForEveryone, JoinGroupCall, RejectParticipant, RemoveParticipant, Role, SendDtmf,
        SetLobby,
    };
}
