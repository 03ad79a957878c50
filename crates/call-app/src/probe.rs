//! Glass-to-glass latency to the presented frame: the window is captured (a Bevy screenshot),
//! each tile's stamped camera picture is read back from the captured pixels through the tile's
//! corners, and its capture time (stamped by the synthetic camera, on this process's clock) is
//! compared with when that frame was presented: the start of the next frame, since rendering
//! finishes each frame before the next begins (no pipelined rendering).

use std::time::Instant;

use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy_calling::pattern;

use crate::scene::{Frozen, Tile};
use crate::visible::OnScreen;

/// The camera pictures' size (bots and the synthetic camera draw 640x360).
const PICTURE: (u32, u32) = (640, 360);

/// Latency samples, and the capture in flight.
#[derive(Resource, Default, Debug)]
pub struct Probe {
    pending: Option<Pending>,
    /// Glass-to-glass latencies measured so far, in milliseconds.
    pub samples: Vec<f64>,
}

#[derive(Debug)]
struct Pending {
    /// Each video tile's corners on screen when the capture was asked for.
    corners: Vec<[[f64; 2]; 4]>,
    /// The frame whose picture is captured.
    frame: u32,
    /// When that frame was presented.
    presented_at: Option<Instant>,
}

/// Measures glass-to-glass latency on request ([`ask`]).
pub struct ProbePlugin;

impl Plugin for ProbePlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Probe>()
            .add_systems(First, mark_presented);
    }
}

/// Asks for one capture of the window, unless one is in flight. Tiles hold still until it is
/// taken; the first call only stops them, since the tiles' corners come from the last frame's
/// transforms: the capture is asked for on the next call, once nothing moved. Returns whether
/// one was asked for.
pub fn ask(
    commands: &mut Commands,
    probe: &mut Probe,
    frozen: &mut Frozen,
    frame: &FrameCount,
    tiles: &Query<(&Tile, &OnScreen)>,
) -> bool {
    if probe.pending.is_some() {
        return false;
    }
    if !frozen.0 {
        frozen.0 = true;
        return false;
    }
    let corners = tiles
        .iter()
        .filter(|(t, o)| t.has_video && o.visible)
        .map(|(_, o)| o.corners.map(|c| [f64::from(c.x), f64::from(c.y)]))
        .collect();
    probe.pending = Some(Pending {
        corners,
        frame: frame.0,
        presented_at: None,
    });
    commands
        .spawn(Screenshot::primary_window())
        .observe(read_capture);
    true
}

/// The frame asked for was rendered and presented once the next one starts.
fn mark_presented(mut probe: ResMut<Probe>, frame: Res<FrameCount>) {
    if let Some(p) = &mut probe.pending
        && p.presented_at.is_none()
        && frame.0 > p.frame
    {
        p.presented_at = Some(Instant::now());
    }
}

/// Reads every tile's stamp from the captured window and records its latency.
fn read_capture(
    captured: On<ScreenshotCaptured>,
    mut probe: ResMut<Probe>,
    mut frozen: ResMut<Frozen>,
) {
    frozen.0 = false;
    let Some(pending) = probe.pending.take() else {
        return;
    };
    let Some(presented_at) = pending.presented_at else {
        return;
    };
    let Ok(picture) = captured.image.clone().try_into_dynamic() else {
        warn!("probe: the capture's pixel format cannot be read");
        return;
    };
    let rgb = picture.to_rgb8();
    let pixel = |x: f64, y: f64| {
        let x = (x.round().max(0.0) as u32).min(rgb.width() - 1);
        let y = (y.round().max(0.0) as u32).min(rgb.height() - 1);
        rgb.get_pixel(x, y).0
    };
    let now = pattern::stamp_micros(presented_at);
    for corners in pending.corners {
        if let Some(stamp) = pattern::read_quad(PICTURE.0, PICTURE.1, corners, pixel) {
            let micros = now.wrapping_sub(stamp.micros);
            // A stamp from the future or minutes old is not one of this process's cameras.
            if micros < 10_000_000 {
                probe.samples.push(f64::from(micros) / 1e3);
            }
        }
    }
}

/// The samples as JSON: count, mean, p50, p95 in milliseconds.
pub fn report(samples: &mut [f64]) -> String {
    let [mean, p50, p95] = crate::script::summary(samples).unwrap_or([0.0, f64::NAN, f64::NAN]);
    serde_json::json!({
        "samples": samples.len(),
        "glass_to_glass_ms_mean": mean,
        "glass_to_glass_ms_p50": p50,
        "glass_to_glass_ms_p95": p95,
    })
    .to_string()
}
