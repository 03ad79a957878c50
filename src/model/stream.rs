//! Video streams: the ones remote participants offer, and this side's own.

use bevy::prelude::*;
use call_media::device::DeviceId;
use call_protocol::{MediaType, StreamStopReason};

/// A video stream a remote participant offers (ACS `RemoteVideoStream`). Rendering it is an
/// explicit [`super::SubscribeVideo`]; while subscribed it carries a [`VideoView`].
#[derive(Component, Reflect, Debug, Clone, PartialEq, Eq)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct RemoteVideoStream {
    /// Camera or screen sharing.
    #[reflect(ignore)]
    pub media_type: MediaType,
    /// Whether the participant is sending it now.
    pub is_available: bool,
    /// Why it stopped by itself (their shared window closed), while it is off for that reason.
    #[reflect(ignore)]
    pub stopped: Option<StreamStopReason>,
}

/// The participant a stream belongs to.
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = Streams)]
pub struct StreamOf(pub Entity);

/// The video streams of a participant (the other side of [`StreamOf`]).
#[derive(Component, Reflect, Debug, Default)]
#[relationship_target(relationship = StreamOf, linked_spawn)]
pub struct Streams(Vec<Entity>);

impl Streams {
    /// The stream entities.
    pub fn entities(&self) -> &[Entity] {
        &self.0
    }
}

/// A subscribed stream's picture (ACS `createView`): an RGBA image that updates as frames are
/// decoded. Removed when the stream is unsubscribed or stops arriving.
#[derive(Component, Reflect, Debug, Clone)]
pub struct VideoView {
    /// The image; use it as a texture anywhere. Black until the first picture arrives.
    pub image: Handle<Image>,
    /// How many pictures have been copied into the image so far.
    pub pictures: u64,
}

impl VideoView {
    /// Whether a picture has arrived (the image is no longer its black placeholder).
    pub fn has_picture(&self) -> bool {
        self.pictures > 0
    }
}

/// Fact: this side's camera or screen share in a call stopped by itself: its source ended
/// (the shared window was closed). The others see the stream's
/// [`RemoteVideoStream::stopped`] with the same reason.
#[derive(Message, Clone, Debug)]
pub struct VideoStopped {
    /// The [`crate::Call`] entity.
    pub call: Entity,
    /// Camera or screen share.
    pub media_type: MediaType,
    /// Why.
    pub reason: StreamStopReason,
}

/// This side's screen share in a call, present while sharing.
#[derive(Component, Reflect, Debug, Clone, PartialEq, Eq)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct LocalScreenShare {
    /// Where its frames come from.
    #[reflect(ignore)]
    pub source: DeviceId,
}

/// This side's video in a call (ACS `LocalVideoStream`), present while video is on.
#[derive(Component, Reflect, Debug, Clone)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct LocalVideoStream {
    /// The camera it comes from.
    #[reflect(ignore)]
    pub camera: DeviceId,
    /// The local preview: what is being sent.
    pub preview: Handle<Image>,
}
