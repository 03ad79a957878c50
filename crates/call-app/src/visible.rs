//! What the stage shows on screen, and the video it subscribes for that: each tile's and
//! panel's corners in the window, then subscriptions that follow what is visible and big enough
//! to see, within the connection's receive slots.

use bevy::camera::Camera;
use bevy::prelude::*;
use bevy_calling::prelude::*;
use call_protocol::VIDEO_SLOTS;

use crate::layout::TILE;
use crate::scene::{SharePanel, StageCamera, Tile};

/// Tiles narrower than this on screen (physical pixels) are not worth a video stream.
const MIN_VISIBLE_WIDTH: f32 = 48.0;

/// Where a tile or panel is on screen, in physical pixels: corners from the top left, clockwise.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct OnScreen {
    /// Top left, top right, bottom right, bottom left.
    pub corners: [Vec2; 4],
    /// Whether its centre is inside the window.
    pub visible: bool,
}

impl OnScreen {
    /// Width across the top edge.
    pub fn width(&self) -> f32 {
        self.corners[0].distance(self.corners[1])
    }

    /// The centre.
    pub fn centre(&self) -> Vec2 {
        self.corners.iter().sum::<Vec2>() / 4.0
    }
}

/// A stream this view subscribed.
#[derive(Component)]
pub struct Watched;

/// Where each tile and panel is on screen.
pub fn project(
    cameras: Query<(&Camera, &GlobalTransform), With<StageCamera>>,
    mut placed: Query<(&GlobalTransform, &mut OnScreen)>,
) {
    let Ok((camera, eye)) = cameras.single() else {
        return;
    };
    let scale = camera.target_scaling_factor().unwrap_or(1.0);
    let Some(view) = camera.physical_viewport_rect() else {
        return;
    };
    let (min, max) = (view.min.as_vec2(), view.max.as_vec2());
    let (w, h) = (TILE.0 / 2.0, TILE.1 / 2.0);
    for (transform, mut on_screen) in &mut placed {
        let corners = [
            Vec3::new(-w, h, 0.0),
            Vec3::new(w, h, 0.0),
            Vec3::new(w, -h, 0.0),
            Vec3::new(-w, -h, 0.0),
        ]
        .map(|c| {
            camera
                .world_to_viewport(eye, transform.transform_point(c))
                .map(|p| p * scale)
                .unwrap_or(Vec2::splat(-1.0))
        });
        let next = OnScreen {
            corners,
            visible: false,
        };
        let centre = next.centre();
        let visible = centre.cmpge(min).all() && centre.cmplt(max).all();
        *on_screen = OnScreen { visible, ..next };
    }
}

/// Subscribes the video of what is on screen and unsubscribes the rest, so cost follows what a
/// person sees: share panels first, then the speaker, then tiles from the largest on screen,
/// up to the receive slots the connection has ([`VIDEO_SLOTS`]); tiles narrower than
/// [`MIN_VISIBLE_WIDTH`] or off screen get none. Unsubscribing goes first, so a slot is free
/// before another stream takes it.
pub fn watch_streams(
    mut commands: Commands,
    tiles: Query<(&Tile, &OnScreen)>,
    panels: Query<&SharePanel>,
    owned: Query<&Streams>,
    streams: Query<(Entity, &RemoteVideoStream, Has<Watched>)>,
) {
    let is_camera = |e: &Entity| {
        streams
            .get(*e)
            .is_ok_and(|(_, s, _)| s.media_type == MediaType::Video)
    };
    // (priority, stream): share panels, then the speaker, then by width on screen.
    let mut ranked: Vec<(f32, Entity)> = panels.iter().map(|p| (f32::INFINITY, p.stream)).collect();
    // Every stream of someone on stage, seen or not.
    let mut live: Vec<Entity> = ranked.iter().map(|&(_, e)| e).collect();
    for (tile, on_screen) in &tiles {
        let Ok(s) = owned.get(tile.participant) else {
            continue;
        };
        live.extend(s.entities());
        if on_screen.visible && on_screen.width() >= MIN_VISIBLE_WIDTH {
            let rank = if tile.is_speaker {
                f32::MAX
            } else {
                on_screen.width()
            };
            ranked.extend(
                s.entities()
                    .iter()
                    .filter(|e| is_camera(e))
                    .map(|&e| (rank, e)),
            );
        }
    }
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let wanted: Vec<Entity> = ranked
        .iter()
        .filter(|(_, e)| streams.get(*e).is_ok_and(|(_, s, _)| s.is_available))
        .map(|&(_, e)| e)
        .take(VIDEO_SLOTS)
        .collect();
    for (stream, _, watched) in &streams {
        if watched && !wanted.contains(&stream) {
            commands.entity(stream).remove::<Watched>();
            // A stream of a call that ended needs no unsubscribing (the service would refuse
            // it: the call is gone).
            if live.contains(&stream) {
                commands.trigger(UnsubscribeVideo { stream });
            }
        }
    }
    for (stream, _, watched) in &streams {
        if !watched && wanted.contains(&stream) {
            commands.entity(stream).insert(Watched);
            commands.trigger(SubscribeVideo { stream });
        }
    }
}
