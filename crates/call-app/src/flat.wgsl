// The stage's one material: an unlit colour, times a picture (a video frame) when there is
// one. Nothing else per pixel, since on software rendering every instruction here runs for
// every pixel of every tile.
#import bevy_pbr::forward_io::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var<uniform> color: vec4<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var picture: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var picture_sampler: sampler;

@fragment
fn fragment(mesh: VertexOutput) -> @location(0) vec4<f32> {
    return color * textureSample(picture, picture_sampler, mesh.uv);
}
