//! Shared by the benchmarks: the senders' child-process loop, and reading a stream's stamp.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_calling::VideoView;
use bevy_calling::pattern::{self, FrameStamp};

/// The test-pattern stamp in the picture `stream` shows in `app` (its texture's data), if any.
pub fn stamp(app: &App, stream: Entity) -> Option<FrameStamp> {
    let view = app.world().get::<VideoView>(stream)?;
    let image = app.world().resource::<Assets<Image>>().get(&view.image)?;
    let size = image.texture_descriptor.size;
    pattern::read_rgba(image.data.as_deref()?, size.width, size.height)
}

/// Calls `update` every 2 ms until the parent writes a line to (or closes) stdin, or `limit`
/// passes.
pub fn update_until_told(mut update: impl FnMut(), limit: Duration) {
    let (tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let start = Instant::now();
    while done.try_recv().is_err() && start.elapsed() < limit {
        update();
        std::thread::sleep(Duration::from_millis(2));
    }
}
