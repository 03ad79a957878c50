//! The stage's material: an unlit colour times an optional picture, with a fragment shader
//! that does only that (`flat.wgsl`). Bevy's `StandardMaterial`, even unlit, runs its whole
//! PBR fragment shader per pixel; on software rendering (lavapipe) that made a tile's pixels
//! the most expensive part of a frame.

use bevy::asset::embedded_asset;
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;

/// An unlit colour, multiplied by `picture` when there is one (white when not).
#[derive(Asset, TypePath, AsBindGroup, Clone, Debug)]
pub struct Flat {
    /// The colour (linear).
    #[uniform(0)]
    pub color: LinearRgba,
    /// The picture, e.g. a video view's image.
    #[texture(1)]
    #[sampler(2)]
    pub picture: Option<Handle<Image>>,
}

impl Flat {
    /// A plain colour.
    pub fn colour(color: Color) -> Self {
        Self {
            color: color.to_linear(),
            picture: None,
        }
    }
}

impl Material for Flat {
    fn fragment_shader() -> ShaderRef {
        "embedded://call_app/flat.wgsl".into()
    }
}

/// Adds the [`Flat`] material and its shader.
pub struct FlatPlugin;

impl Plugin for FlatPlugin {
    fn build(&self, app: &mut App) {
        embedded_asset!(app, "flat.wgsl");
        app.add_plugins(MaterialPlugin::<Flat>::default());
    }
}
