//! Lists this machine's screen sources (screens and application windows, with each window's
//! application) and captures a second of one of them, printing the frames' size, rate and mean
//! colour: a check that screen sharing sees this platform's desktop (X11, Windows or macOS).
//!
//! `cargo run -p call-media --example screens [part of a source's name]` (the first source when
//! none is given).

use std::time::{Duration, Instant};

use call_media::device::{DeviceKind, DeviceManager, SCREEN_FPS};

fn main() {
    let devices = DeviceManager::new();
    let sources = devices.list(DeviceKind::Screen);
    for source in &sources {
        let application = source.application.as_deref().unwrap_or("-");
        println!("{}  {:?} ({application})", source.id.0, source.name);
    }
    let wanted = std::env::args().nth(1).unwrap_or_default();
    let Some(chosen) = sources.iter().find(|s| s.name.contains(&wanted)) else {
        println!("no screen source named like {wanted:?}");
        std::process::exit(1);
    };
    let camera = match devices.open_camera(&chosen.id) {
        Ok(camera) => camera,
        Err(e) => {
            println!("{e}");
            std::process::exit(1);
        }
    };
    let start = Instant::now();
    let mut frames = 0;
    while start.elapsed() < Duration::from_secs(1) {
        let Ok(frame) = camera.frames.recv_timeout(Duration::from_secs(2)) else {
            println!("no picture: {:?}", camera.end_reason());
            std::process::exit(1);
        };
        frames += 1;
        if frames == 1 {
            let mut rgba = vec![0; (frame.width * frame.height * 4) as usize];
            frame.to_rgba(&mut rgba);
            let pixels = (frame.width * frame.height) as u64;
            let mean = |c: usize| {
                rgba.iter()
                    .skip(c)
                    .step_by(4)
                    .map(|&v| u64::from(v))
                    .sum::<u64>()
                    / pixels
            };
            println!(
                "{:?}: {}x{}, mean colour ({}, {}, {})",
                chosen.name,
                frame.width,
                frame.height,
                mean(0),
                mean(1),
                mean(2)
            );
        }
    }
    println!("{frames} pictures in one second (captured at {SCREEN_FPS} fps)");
}
