//! Where tiles go: participants on an arc facing the viewer, in rows, the active speaker brought
//! forward, a screen share as a large panel above them. Pure geometry, no ECS.

use bevy::math::{Quat, Vec3};

/// A camera tile's width and height in world units (16:9).
pub const TILE: (f32, f32) = (1.6, 0.9);
/// Space between tiles: enough that the active speaker's tile, forward and a little bigger,
/// with its lit frame, never covers a neighbour.
const GAP: f32 = 0.3;
/// The share of the view's width a row may span.
const ROW_SPAN: f32 = 0.85;
/// The vertical extent rows may fill, as a share of the view's height at their distance.
const COLUMN_SPAN: f32 = 0.8;
/// tan(half the vertical field of view): Bevy's default 45° perspective.
const TAN_HALF_FOV: f32 = 0.414_213_57;
/// Most tiles in one row.
const MAX_COLUMNS: usize = 6;
/// How much closer (share of the radius) and bigger the active speaker's tile is.
const SPEAKER_FORWARD: f32 = 0.06;
const SPEAKER_SCALE: f32 = 1.03;

/// Where one tile should be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placement {
    /// Its centre.
    pub position: Vec3,
    /// Facing the viewer.
    pub rotation: Quat,
    /// 1 for a normal tile.
    pub scale: f32,
}

/// Places `count` tiles for a viewer at the origin looking down -Z through a view `aspect`
/// (width / height) wide; `speaker` is the index of the active speaker's tile, `sharing` makes
/// room for a screen share above the tiles.
pub fn arrange(count: usize, speaker: Option<usize>, sharing: bool, aspect: f32) -> Vec<Placement> {
    if count == 0 {
        return Vec::new();
    }
    // A grid about as wide for its height as the view is, in 16:9 tiles.
    let tile_aspect = TILE.0 / TILE.1;
    let columns = ((count as f32 * aspect.max(0.2) / tile_aspect).sqrt().ceil() as usize)
        .clamp(1, MAX_COLUMNS.min(count));
    let rows = count.div_ceil(columns);
    let (w, h) = TILE;
    // Far enough that a row spans at most ROW_SPAN of the view's angle and the rows fit its
    // height.
    let view_angle = 2.0 * (TAN_HALF_FOV * aspect.max(0.2)).atan();
    let along_row = columns as f32 * (w + GAP) / (ROW_SPAN * view_angle);
    let share = if sharing { 0.45 } else { 1.0 };
    let down_column = rows as f32 * (h + GAP) / (2.0 * TAN_HALF_FOV * COLUMN_SPAN * share);
    let radius = along_row.max(down_column).max(3.0);
    let lift = if sharing {
        -radius * TAN_HALF_FOV * 0.5
    } else {
        0.0
    };
    let mut placements = Vec::with_capacity(count);
    for index in 0..count {
        let (row, column) = (index / columns, index % columns);
        let in_row = if row + 1 == rows {
            count - row * columns
        } else {
            columns
        };
        let angle = (column as f32 - (in_row as f32 - 1.0) / 2.0) * (w + GAP) / radius;
        let y = lift + ((rows as f32 - 1.0) / 2.0 - row as f32) * (h + GAP);
        let forward = if speaker == Some(index) {
            1.0 - SPEAKER_FORWARD
        } else {
            1.0
        };
        let r = radius * forward;
        let position = Vec3::new(r * angle.sin(), y, -r * angle.cos());
        placements.push(Placement {
            position,
            // A quad faces +Z: turn it by the angle so it faces the viewer at the origin.
            rotation: Quat::from_rotation_y(-angle),
            scale: if speaker == Some(index) {
                SPEAKER_SCALE
            } else {
                1.0
            },
        });
    }
    placements
}

/// Where the screen share panel goes when the tiles are arranged for `count` with a share: above
/// them, centred, as wide as the view allows. Returns the placement and its width.
pub fn share_panel(count: usize, aspect: f32) -> (Placement, f32) {
    let distance = arrange(count.max(1), None, true, aspect)
        .first()
        .map_or(3.0, |p| p.position.length().max(3.0));
    let height = distance * TAN_HALF_FOV * 0.9;
    let placement = Placement {
        position: Vec3::new(0.0, distance * TAN_HALF_FOV * 0.45, -distance),
        rotation: Quat::IDENTITY,
        scale: 1.0,
    };
    let width = (height * 16.0 / 9.0).min(2.0 * distance * TAN_HALF_FOV * aspect * 0.9);
    (placement, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_form_rows_on_an_arc_facing_the_viewer() {
        for (count, aspect) in [
            (1, 1.78),
            (2, 1.78),
            (4, 1.25),
            (9, 1.78),
            (16, 1.0),
            (40, 1.78),
        ] {
            let tiles = arrange(count, None, false, aspect);
            assert_eq!(tiles.len(), count);
            for t in &tiles {
                // In front of the viewer, and turned towards it.
                assert!(t.position.z < -2.0, "{count}: {t:?}");
                let facing = t.rotation * Vec3::Z;
                let to_viewer = -t.position.with_y(0.0).normalize();
                assert!(facing.dot(to_viewer) > 0.99, "{count}: {t:?}");
            }
            // Within the view: the edge tiles inside the horizontal field, rows inside the
            // vertical one.
            for t in &tiles {
                let edge = (t.position.x.abs() + TILE.0 / 2.0) / -t.position.z;
                assert!(edge < TAN_HALF_FOV * aspect, "{count} at {aspect}: {edge}");
                let up = t.position.y.abs() / -t.position.z;
                assert!(up < TAN_HALF_FOV, "{count}: {up}");
            }
        }
    }

    #[test]
    fn the_speaker_and_its_frame_stay_clear_of_the_neighbours() {
        for count in [2, 4, 9] {
            let tiles = arrange(count, Some(0), false, 1.78);
            let (speaker, next) = (tiles[0], tiles[1]);
            // Seen from the viewer: the speaker's right edge (frame included) against the
            // neighbour's left edge, as angles.
            let half = (TILE.0 + 0.1) / 2.0 * speaker.scale;
            let edge = speaker.position + speaker.rotation * bevy::math::Vec3::X * half;
            let their = next.position - next.rotation * bevy::math::Vec3::X * (TILE.0 / 2.0);
            let angle = |p: bevy::math::Vec3| p.x.atan2(-p.z);
            assert!(angle(edge) < angle(their), "{count}: overlap");
        }
    }

    #[test]
    fn the_speaker_comes_forward_and_a_share_lifts_over_the_tiles() {
        let tiles = arrange(4, Some(2), false, 1.78);
        assert!(tiles[2].position.length() < tiles[0].position.length());
        assert!(tiles[2].scale > tiles[0].scale);
        let (panel, width) = share_panel(4, 1.78);
        let shared = arrange(4, None, true, 1.78);
        assert!(shared.iter().all(|t| t.position.y < panel.position.y));
        assert!(width > TILE.0 * 2.0);
    }
}
