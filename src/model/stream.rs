//! Video streams: the ones remote participants offer, and this side's own.

use bevy::prelude::*;
use call_media::device::DeviceId;
use call_protocol::MediaType;

/// A video stream a remote participant offers (ACS `RemoteVideoStream`). Rendering it is an
/// explicit [`super::SubscribeVideo`]; while subscribed it carries a [`VideoView`].
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct RemoteVideoStream {
    /// Camera or screen sharing.
    pub media_type: MediaType,
    /// Whether the participant is sending it now.
    pub is_available: bool,
}

/// The participant a stream belongs to.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
#[relationship(relationship_target = Streams)]
pub struct StreamOf(pub Entity);

/// The video streams of a participant (the other side of [`StreamOf`]).
#[derive(Component, Debug, Default)]
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
#[derive(Component, Debug, Clone)]
pub struct VideoView {
    /// The image; use it as a texture anywhere.
    pub image: Handle<Image>,
}

/// This side's screen share in a call, present while sharing.
#[derive(Component, Debug, Clone, PartialEq, Eq)]
pub struct LocalScreenShare {
    /// Where its frames come from.
    pub source: DeviceId,
}

/// This side's video in a call (ACS `LocalVideoStream`), present while video is on.
#[derive(Component, Debug, Clone)]
pub struct LocalVideoStream {
    /// The camera it comes from.
    pub camera: DeviceId,
    /// The local preview: what is being sent.
    pub preview: Handle<Image>,
}
