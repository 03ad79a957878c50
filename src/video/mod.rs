//! Frames to the GPU: each rendered stream (a subscribed [`crate::VideoView`] or a local
//! preview) has a [`FrameFeed`] joining its engine-side latest-frame slot to its `Image`. One
//! system copies a slot's picture into the image only when the slot has a new one; the RGBA
//! conversion already happened on the media side (SIMD). The images are render-world assets:
//! when a renderer runs, Bevy moves each new picture's bytes to the GPU upload instead of cloning
//! them, so the picture is never kept twice in the main world (a new buffer is then filled per
//! frame); without a renderer (headless apps, tests) the bytes stay in the image and its buffer
//! is reused.

#[cfg(feature = "render")]
pub(crate) mod share_view;

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use call_media::video::FrameSlot;
use wgpu_types::{Extent3d, TextureDimension, TextureFormat};

/// Joins an engine latest-frame slot to the image it is shown in.
#[derive(Component)]
pub(crate) struct FrameFeed {
    slot: FrameSlot,
    seen: u64,
    image: Handle<Image>,
}

impl FrameFeed {
    /// A feed from `slot` into a new image. Only pictures published from now on are shown, so a
    /// reused slot never shows its previous stream's last frame. `None` (logged) when the app has
    /// no image assets: the plugin adds them in `finish`, which an app driven by hand with
    /// `update()` must call first.
    pub(crate) fn new(slot: FrameSlot, world: &mut World) -> Option<Self> {
        if let Some(waker) = world.get_resource::<crate::MediaWaker>() {
            slot.wake_on_publish(waker.0.clone());
        }
        let Some(mut images) = world.get_resource_mut::<Assets<Image>>() else {
            warn_once!("no Assets<Image>: call App::finish() before App::update() to show video");
            return None;
        };
        let image = images.add(Image::new_fill(
            Extent3d {
                width: 2,
                height: 2,
                depth_or_array_layers: 1,
            },
            TextureDimension::D2,
            &[0, 0, 0, 255],
            TextureFormat::Rgba8UnormSrgb,
            RenderAssetUsages::RENDER_WORLD,
        ));
        Some(Self {
            seen: slot.sequence(),
            slot,
            image,
        })
    }

    /// The image the feed fills.
    pub(crate) fn image(&self) -> Handle<Image> {
        self.image.clone()
    }
}

/// Copies each feed's new picture into its image, counting it on the stream's [`crate::VideoView`].
pub(crate) fn upload_frames(
    mut feeds: Query<(&mut FrameFeed, Option<&mut crate::VideoView>)>,
    images: Option<ResMut<Assets<Image>>>,
) {
    let Some(mut images) = images else {
        return;
    };
    for (mut feed, view) in &mut feeds {
        let feed = &mut *feed;
        let Some(mut image) = images.get_mut(&feed.image) else {
            continue;
        };
        if let Some(seen) = feed.slot.read_if_new(feed.seen, |frame| {
            let size = Extent3d {
                width: frame.width,
                height: frame.height,
                depth_or_array_layers: 1,
            };
            if image.texture_descriptor.size != size {
                image.resize(size);
            }
            match image.data.as_mut() {
                Some(data) if data.len() == frame.rgba.len() => data.copy_from_slice(&frame.rgba),
                // Taken by the renderer's extraction (or resized): a fresh buffer.
                _ => image.data = Some(frame.rgba.clone()),
            }
        }) {
            feed.seen = seen;
            if let Some(mut view) = view {
                view.pictures += 1;
            }
        }
    }
}
