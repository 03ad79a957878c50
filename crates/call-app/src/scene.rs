//! The spatial view: each remote participant is a tile in a 3D scene, on an arc facing the
//! viewer (`layout.rs`). A tile shows the participant's camera as a GPU texture (the plugin's
//! `VideoView` image on the flat material of `flat.rs`), or a colour with their initials; the active speaker
//! comes forward with a smooth animation and a lit frame; a screen share is a large panel.
//! Streams are subscribed only while their tile is on screen and big enough to see, so the cost
//! follows what is visible.

use bevy::camera::Camera;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::prelude::*;
use bevy::window::RequestRedraw;
use bevy_calling::prelude::*;

use crate::flat::Flat;
use crate::layout::{self, Placement, TILE};
use crate::visible::{self, OnScreen};

/// The distance at which a voice plays at its received level.
const VOICE_REFERENCE: f32 = 5.0;
/// How fast tiles move to their places: the remaining distance shrinks by e^-rate per second.
const ANIMATION_RATE: f32 = 8.0;
/// A tile this close to where it is going (in scene units and radians) is there.
const SETTLED: f32 = 1e-3;
/// The longest step one frame animates: the first frame after a sleep moves as if it came
/// quickly, so a tile glides instead of jumping.
const LONGEST_STEP: f32 = 0.1;

/// The call the view shows, and the person's agent.
#[derive(Resource, Default, Debug)]
pub struct Focus {
    /// This app's person, once signed in.
    pub agent: Option<Entity>,
    /// Their live call, if any.
    pub call: Option<Entity>,
}

/// A participant's tile.
#[derive(Component, Debug)]
pub struct Tile {
    /// The [`RemoteParticipant`] entity.
    pub participant: Entity,
    /// Their display name.
    pub name: String,
    /// Where it is going.
    target: Placement,
    /// Whether it shows a picture of their camera now (subscribed, and a picture arrived).
    pub has_video: bool,
    /// Whether it is the active speaker's.
    pub is_speaker: bool,
}

/// The lit frame behind a tile.
#[derive(Component)]
struct TileFrame;

/// The screen-share panel, showing `stream`.
#[derive(Component, Debug)]
pub struct SharePanel {
    /// The [`RemoteVideoStream`] entity.
    pub stream: Entity,
    /// Whether a picture of the share arrived.
    pub has_picture: bool,
}

/// While set, tiles hold still and keep their places, and the stage its viewport (a screenshot
/// is being taken of them).
#[derive(Resource, Default, Debug)]
pub struct Frozen(pub bool);

/// Whether the stage may move: not while [`Frozen`].
fn thawed(frozen: Res<Frozen>) -> bool {
    !frozen.0
}

/// The 3D view's camera.
#[derive(Component)]
pub struct StageCamera;

/// Shared meshes and the frame materials.
#[derive(Resource)]
struct SceneAssets {
    tile: Handle<Mesh>,
    frame: Handle<Mesh>,
    speaker: Handle<Flat>,
    speaking: Handle<Flat>,
}

/// The spatial view's systems, in `Update`.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SceneSet;

/// The spatial view's systems.
pub struct ScenePlugin;

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(crate::flat::FlatPlugin)
            .init_resource::<Focus>()
            .init_resource::<Frozen>()
            .add_systems(Startup, setup)
            .add_systems(
                Update,
                (
                    // Frozen, the stage keeps its viewport too: a side panel that grows with
                    // its numbers must not move the tiles under a screenshot.
                    fit_stage.run_if(thawed),
                    focus,
                    (sync_tiles, sync_share_panel, animate).run_if(thawed),
                    place_voices,
                    paint,
                    visible::project,
                    visible::watch_streams,
                )
                    .chain()
                    .in_set(SceneSet),
            );
    }
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut materials: ResMut<Assets<Flat>>,
) {
    // The controls' camera carries egui's primary context (set here, not left to whichever
    // camera egui sees first): it covers the whole window, on top of the stage.
    // No multisampling here either: on software rendering a 4x buffer for the whole window
    // costs more than everything else drawn.
    commands.spawn((
        bevy_egui::PrimaryEguiContext,
        Camera2d,
        Camera {
            order: 1,
            clear_color: ClearColorConfig::None,
            ..default()
        },
        Msaa::Off,
    ));
    // The stage: exact video colours (no tonemapping, no multisampling, which is also cheaper
    // on software rendering), in the window's part the panels leave free.
    commands.spawn((
        StageCamera,
        Camera3d::default(),
        Msaa::Off,
        Tonemapping::None,
        Transform::IDENTITY,
    ));
    commands.insert_resource(ClearColor(Color::srgb(0.07, 0.08, 0.1)));
    let unlit = Flat::colour;
    commands.insert_resource(SceneAssets {
        tile: meshes.add(Rectangle::new(TILE.0, TILE.1)),
        frame: meshes.add(Rectangle::new(TILE.0 + 0.1, TILE.1 + 0.1)),
        speaker: materials.add(unlit(Color::srgb(1.0, 0.75, 0.2))),
        speaking: materials.add(unlit(Color::srgb(0.3, 0.8, 0.4))),
    });
}

/// The stage takes the part of the window the panels left free last frame, within the window's
/// size now (a window made smaller since would otherwise get a viewport outside it, which the
/// renderer refuses).
fn fit_stage(
    screens: Res<crate::screens::Screens>,
    windows: Query<&Window, With<bevy::window::PrimaryWindow>>,
    mut cameras: Query<&mut Camera, With<StageCamera>>,
) {
    let (Ok(mut camera), Ok(window)) = (cameras.single_mut(), windows.single()) else {
        return;
    };
    let (width, height) = (
        window.physical_width() as f32,
        window.physical_height() as f32,
    );
    let viewport = screens.drawn.stage.and_then(|[left, top, right, bottom]| {
        let (right, bottom) = (right.min(width), bottom.min(height));
        let size = UVec2::new(
            (right - left).max(0.0) as u32,
            (bottom - top).max(0.0) as u32,
        );
        (size.x >= 16 && size.y >= 16).then(|| bevy::camera::Viewport {
            physical_position: UVec2::new(left as u32, top as u32),
            physical_size: size,
            ..default()
        })
    });
    let rect = |v: &Option<bevy::camera::Viewport>| {
        v.as_ref().map(|v| (v.physical_position, v.physical_size))
    };
    if rect(&camera.viewport) != rect(&viewport) {
        camera.viewport = viewport;
    }
}

/// The stage's width over its height.
fn stage_aspect(camera: &Camera) -> f32 {
    camera
        .logical_viewport_size()
        .map_or(16.0 / 9.0, |s| s.x / s.y.max(1.0))
}

/// Follows the person's live call: the newest one not ended.
fn focus(mut focus: ResMut<Focus>, agents: Query<&AgentCalls>, calls: Query<&Call>) {
    let call = focus.agent.and_then(|a| agents.get(a).ok()).and_then(|c| {
        c.iter().rev().find(|&e| {
            calls
                .get(e)
                .is_ok_and(|c| c.state != CallState::Disconnected)
        })
    });
    if focus.call != call {
        focus.call = call;
    }
}

/// What is on stage: the focused call's participants who have not left, their streams, and
/// the stage camera's shape.
#[derive(bevy::ecs::system::SystemParam)]
struct Stage<'w, 's> {
    focus: Res<'w, Focus>,
    calls: Query<'w, 's, (&'static Participants, Option<&'static DominantSpeakers>)>,
    participants: Query<'w, 's, (&'static RemoteParticipant, Option<&'static Streams>)>,
    streams: Query<'w, 's, &'static RemoteVideoStream>,
    cameras: Query<'w, 's, &'static Camera, With<StageCamera>>,
}

impl Stage<'_, '_> {
    /// The participants on stage, in roster order.
    fn people(&self) -> Vec<Entity> {
        let Some((people, _)) = self.focus.call.and_then(|c| self.calls.get(c).ok()) else {
            return Vec::new();
        };
        people
            .entities()
            .iter()
            .copied()
            .filter(|&e| {
                self.participants
                    .get(e)
                    .is_ok_and(|(p, _)| p.state != ParticipantState::Disconnected)
            })
            .collect()
    }

    /// The index in `people` of the active speaker: the service's first dominant speaker.
    fn speaker(&self, people: &[Entity]) -> Option<usize> {
        let (_, dominant) = self.focus.call.and_then(|c| self.calls.get(c).ok())?;
        let first = dominant?.speakers.first()?;
        people.iter().position(|&e| {
            self.participants
                .get(e)
                .is_ok_and(|(p, _)| &p.identifier == first)
        })
    }

    /// The first available screen share of someone in `people`.
    fn shared_screen(&self, people: &[Entity]) -> Option<Entity> {
        people
            .iter()
            .filter_map(|&p| self.participants.get(p).ok()?.1)
            .flat_map(|s| s.entities().iter().copied())
            .find(|&e| {
                self.streams
                    .get(e)
                    .is_ok_and(|s| s.media_type == MediaType::ScreenSharing && s.is_available)
            })
    }

    /// The stage's width over its height.
    fn aspect(&self) -> f32 {
        self.cameras.single().map_or(16.0 / 9.0, stage_aspect)
    }

    fn name(&self, participant: Entity) -> String {
        self.participants
            .get(participant)
            .map(|(p, _)| p.display_name.clone())
            .unwrap_or_default()
    }
}

/// One tile per participant on stage, placed by the layout.
fn sync_tiles(
    mut commands: Commands,
    stage: Stage,
    assets: Res<SceneAssets>,
    mut materials: ResMut<Assets<Flat>>,
    mut tiles: Query<(Entity, &mut Tile)>,
) {
    let people = stage.people();
    for (entity, tile) in &tiles {
        if !people.contains(&tile.participant) {
            commands.entity(entity).despawn();
        }
    }
    let active = stage.speaker(&people);
    let sharing = stage.shared_screen(&people).is_some();
    let places = layout::arrange(people.len(), active, sharing, stage.aspect());
    for (index, (&participant, place)) in people.iter().zip(places).enumerate() {
        let is_speaker = active == Some(index);
        if let Some((_, mut tile)) = tiles.iter_mut().find(|(_, t)| t.participant == participant) {
            tile.target = place;
            tile.is_speaker = is_speaker;
            continue;
        }
        let name = stage.name(participant);
        let material = materials.add(Flat::colour(colour_for(&name)));
        commands
            .spawn((
                Tile {
                    participant,
                    name,
                    target: place,
                    has_video: false,
                    is_speaker,
                },
                OnScreen::default(),
                Shown::default(),
                Mesh3d(assets.tile.clone()),
                MeshMaterial3d(material),
                // New tiles grow from the back of their place.
                Transform::from_translation(place.position * 1.3)
                    .with_rotation(place.rotation)
                    .with_scale(Vec3::splat(0.01)),
            ))
            .with_child((
                TileFrame,
                Mesh3d(assets.frame.clone()),
                MeshMaterial3d(assets.speaking.clone()),
                Transform::from_xyz(0.0, 0.0, -0.01),
                Visibility::Hidden,
            ));
    }
}

/// A calm colour per name, for tiles without video.
pub fn colour_for(name: &str) -> Color {
    let hash = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    Color::hsl((hash % 360) as f32, 0.35, 0.35)
}

/// The screen share panel follows the first available screen-share stream on stage.
fn sync_share_panel(
    mut commands: Commands,
    stage: Stage,
    assets: Res<SceneAssets>,
    mut materials: ResMut<Assets<Flat>>,
    panels: Query<(Entity, &SharePanel)>,
) {
    let people = stage.people();
    let shared = stage.shared_screen(&people);
    for (entity, panel) in &panels {
        if Some(panel.stream) != shared {
            commands.entity(entity).despawn();
        }
    }
    let Some(stream) = shared else { return };
    if panels.iter().any(|(_, p)| p.stream == stream) {
        return;
    }
    let (place, width) = layout::share_panel(people.len(), stage.aspect());
    commands.spawn((
        SharePanel {
            stream,
            has_picture: false,
        },
        OnScreen::default(),
        Shown::default(),
        Mesh3d(assets.tile.clone()),
        MeshMaterial3d(materials.add(Flat::colour(Color::BLACK))),
        Transform::from_translation(place.position).with_scale(Vec3::splat(width / TILE.0)),
    ));
}

/// Moves tiles smoothly to their places; lights the active speaker's frame.
fn animate(
    time: Res<Time>,
    mut tiles: Query<(&Tile, &mut Transform, &Children)>,
    mut frames: Query<(&mut Visibility, &mut MeshMaterial3d<Flat>), With<TileFrame>>,
    participants: Query<&RemoteParticipant>,
    assets: Res<SceneAssets>,
    mut redraw: MessageWriter<RequestRedraw>,
) {
    // The app draws on demand: frames keep coming while anything is still on its way.
    let k = 1.0 - (-ANIMATION_RATE * time.delta_secs().min(LONGEST_STEP)).exp();
    let mut moving = false;
    for (tile, mut transform, children) in &mut tiles {
        let target = tile.target;
        let goal = Transform {
            translation: target.position,
            rotation: target.rotation,
            scale: Vec3::splat(target.scale),
        };
        let arrived = transform.translation.distance(goal.translation) < SETTLED
            && transform.rotation.angle_between(goal.rotation) < SETTLED
            && transform.scale.distance(goal.scale) < SETTLED;
        if arrived {
            if *transform != goal {
                *transform = goal;
            }
        } else {
            moving = true;
            transform.translation = transform.translation.lerp(goal.translation, k);
            transform.rotation = transform.rotation.slerp(goal.rotation, k);
            transform.scale = transform.scale.lerp(goal.scale, k);
        }
        let speaking = participants
            .get(tile.participant)
            .is_ok_and(|p| p.is_speaking);
        for &child in children {
            if let Ok((mut visibility, mut material)) = frames.get_mut(child) {
                *visibility = if tile.is_speaker || speaking {
                    Visibility::Inherited
                } else {
                    Visibility::Hidden
                };
                let wanted = if tile.is_speaker {
                    &assets.speaker
                } else {
                    &assets.speaking
                };
                if material.0 != *wanted {
                    material.0 = wanted.clone();
                }
            }
        }
    }
    if moving {
        redraw.write(RequestRedraw);
    }
}

/// Each voice plays from where its tile is going (positional audio in the plugin's mixer).
fn place_voices(
    mut commands: Commands,
    cameras: Query<&GlobalTransform, With<StageCamera>>,
    tiles: Query<&Tile>,
    placed: Query<Option<&VoicePlacement>>,
) {
    let Ok(listener) = cameras.single() else {
        return;
    };
    for tile in &tiles {
        let wanted = VoicePlacement::at(listener, tile.target.position, VOICE_REFERENCE);
        if placed.get(tile.participant).ok().flatten() != Some(&wanted) {
            commands.entity(tile.participant).try_insert(wanted);
        }
    }
}

/// What a tile's or panel's material shows: a video image (and the size its texture had when
/// the material was last prepared), or nothing.
#[derive(Component, Default)]
struct Shown(Option<(AssetId<Image>, UVec2)>);

/// Puts `view` (or `fallback`) on `material`. A material is prepared against its texture as it
/// was then, so when the image is re-created at another size (a stream's first frame, or a new
/// resolution) the material is touched to bind the new texture.
fn show(
    materials: &mut Assets<Flat>,
    images: &Assets<Image>,
    material: &Handle<Flat>,
    view: Option<&Handle<Image>>,
    fallback: Color,
    shown: &mut Shown,
) {
    let now = view.map(|v| (v.id(), images.get(v).map_or(UVec2::ZERO, Image::size)));
    if shown.0 == now {
        return;
    }
    shown.0 = now;
    if let Some(mut m) = materials.get_mut(material) {
        m.color = if view.is_some() {
            LinearRgba::WHITE
        } else {
            fallback.to_linear()
        };
        m.picture = view.cloned();
    }
}

/// Puts each tile's video image (or its colour) on its material, and the share on its panel.
fn paint(
    mut materials: ResMut<Assets<Flat>>,
    images: Res<Assets<Image>>,
    mut tiles: Query<(&mut Tile, &MeshMaterial3d<Flat>, &mut Shown)>,
    mut panels: Query<(&mut SharePanel, &MeshMaterial3d<Flat>, &mut Shown), Without<Tile>>,
    participants: Query<(&RemoteParticipant, Option<&Streams>)>,
    streams: Query<(&RemoteVideoStream, Option<&VideoView>)>,
) {
    for (mut tile, material, mut shown) in &mut tiles {
        let Ok((participant, owned)) = participants.get(tile.participant) else {
            continue;
        };
        let view = owned.and_then(|s| {
            s.entities().iter().find_map(|&e| match streams.get(e) {
                Ok((s, Some(view))) if s.media_type == MediaType::Video && s.is_available => {
                    Some(view)
                }
                _ => None,
            })
        });
        let fallback = colour_for(&participant.display_name);
        show(
            &mut materials,
            &images,
            &material.0,
            view.map(|v| &v.image),
            fallback,
            &mut shown,
        );
        tile.has_video = view.is_some_and(VideoView::has_picture);
    }
    for (mut panel, material, mut shown) in &mut panels {
        let view = streams.get(panel.stream).ok().and_then(|(_, v)| v);
        show(
            &mut materials,
            &images,
            &material.0,
            view.map(|v| &v.image),
            Color::BLACK,
            &mut shown,
        );
        panel.has_picture = view.is_some_and(VideoView::has_picture);
    }
}
