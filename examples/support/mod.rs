//! Shared by the benchmarks: the senders' child-process loop, reading a stream's stamp, and
//! processes' CPU time.
#![allow(dead_code)] // Each benchmark uses a different part, as with tests/common.

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

/// The parent of process `pid` and its user plus system CPU seconds, from `/proc/<pid>/stat`.
fn parent_and_cpu(pid: u32) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may itself hold spaces and parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((parent, ticks / 100.0))
}

/// The user plus system CPU seconds of this process.
pub fn own_cpu_seconds() -> f64 {
    parent_and_cpu(std::process::id())
        .expect("this process's /proc/self/stat")
        .1
}

/// The user plus system CPU seconds of every process descending from `root` (not `root`
/// itself).
pub fn descendants_cpu_seconds(root: u32) -> f64 {
    let processes: Vec<(u32, u32, f64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter_map(|pid| {
            let (parent, cpu) = parent_and_cpu(pid)?;
            Some((pid, parent, cpu))
        })
        .collect();
    let (mut parents, mut total) = (vec![root], 0.0);
    while let Some(parent) = parents.pop() {
        for &(pid, _, cpu) in processes.iter().filter(|p| p.1 == parent) {
            total += cpu;
            parents.push(pid);
        }
    }
    total
}
