//! Sharing what a camera renders (the `render` feature): a [`ShareableView`] makes an image a
//! camera renders into a screen source. While the source is shared, the image is read back from
//! the GPU once per screen-share frame (Bevy's `Readback`, one request at a time) and pushed to
//! the engine, which converts it to I420 and encodes it like any screen.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use call_media::device::{DeviceId, FramePusher};
use wgpu_types::TextureFormat;

use crate::Devices;

/// Makes what a camera renders into `image` a screen source (the native analogue of sharing a
/// browser tab: a view of a game's world or a replay, without capturing the desktop). Put it on
/// any entity; the plugin lists it as a [`crate::Device`] of kind [`crate::DeviceKind::Screen`]
/// named `name`, and adds a [`ViewSource`] with its id for [`crate::StartScreenShare`].
/// `image` must be RGBA8 (`Image::new_target_texture` with `Rgba8UnormSrgb`, plus the
/// `COPY_SRC` usage so it can be read back). Removing it removes the source, ending its shares.
#[derive(Component, Clone, Debug)]
pub struct ShareableView {
    /// The name people choose it by.
    pub name: String,
    /// The image a camera renders into.
    pub image: Handle<Image>,
}

/// The screen source of a [`ShareableView`], added by the plugin.
#[derive(Component, Clone)]
pub struct ViewSource {
    /// Its device id, for [`crate::StartScreenShare`] or [`crate::SelectDevice`].
    pub id: DeviceId,
    pusher: FramePusher,
    /// When the readback in flight was asked for, if one is.
    asked: Option<Instant>,
}

/// A readback that has not come back by then is given up and asked again (the image may not
/// have been on the GPU yet).
const READBACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Lists a new [`ShareableView`] as a screen source.
pub(crate) fn add_view_source(
    added: On<Add, ShareableView>,
    views: Query<&ShareableView>,
    devices: Res<Devices>,
    mut commands: Commands,
) {
    let Ok(view) = views.get(added.entity) else {
        return;
    };
    let (id, pusher) = devices.0.add_rendered_screen(&view.name);
    commands
        .entity(added.entity)
        .insert(ViewSource {
            id,
            pusher,
            asked: None,
        })
        .observe(push_picture);
}

/// Unlists a [`ShareableView`] that goes.
pub(crate) fn remove_view_source(
    removed: On<Remove, ShareableView>,
    sources: Query<&ViewSource>,
    devices: Res<Devices>,
    mut commands: Commands,
) {
    if let Ok(source) = sources.get(removed.entity) {
        devices.0.remove(&source.id);
        commands
            .entity(removed.entity)
            .try_remove::<(ViewSource, Readback)>();
    }
}

/// Asks for one readback of each view whose share wants a picture, and withdraws last frame's
/// request (it was extracted to the render world by then, which is all a readback needs).
pub(crate) fn request_readbacks(
    mut views: Query<(Entity, &ShareableView, &mut ViewSource, Has<Readback>)>,
    mut commands: Commands,
) {
    for (entity, view, mut source, asked_last_frame) in &mut views {
        if asked_last_frame {
            commands.entity(entity).remove::<Readback>();
            continue;
        }
        let waiting = source
            .asked
            .is_some_and(|at| at.elapsed() < READBACK_TIMEOUT);
        if !waiting && source.pusher.wants_picture() {
            source.asked = Some(Instant::now());
            commands
                .entity(entity)
                .insert(Readback::texture(view.image.clone()));
        }
    }
}

/// Pushes a read-back picture to the view's source.
fn push_picture(
    done: On<ReadbackComplete>,
    mut sources: Query<(&ShareableView, &mut ViewSource)>,
    images: Res<Assets<Image>>,
) {
    let Ok((view, mut source)) = sources.get_mut(done.entity) else {
        return;
    };
    source.asked = None;
    let Some(image) = images.get(&view.image) else {
        return;
    };
    let format = image.texture_descriptor.format;
    if !matches!(
        format,
        TextureFormat::Rgba8UnormSrgb | TextureFormat::Rgba8Unorm
    ) {
        warn_once!("a ShareableView's image is {format:?}, not RGBA8: not shared");
        return;
    }
    let (width, height) = (image.width(), image.height());
    // Rows come padded to the GPU's copy alignment.
    let stride = done.data.len() / height.max(1) as usize;
    if stride < width as usize * 4 {
        return;
    }
    source
        .pusher
        .push_rgba(&done.data, width, height, stride as u32);
}
