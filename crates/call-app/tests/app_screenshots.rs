//! The conference app as a person sees it: the app performs a scenario under Xvfb with software
//! rendering (Mesa's lavapipe), saves screenshots, and these tests check their pixels: each
//! video tile carries a valid stamp of the synthetic camera it shows (read back through the
//! tile's corners on screen), the in-call bar and the statistics window are drawn. They also
//! check that the app draws only when something changes, and that tiles too small to see are
//! unsubscribed (no video received for them) and subscribed again when they grow.
//!
//! Needs `xvfb-run` and Mesa's Vulkan driver, which `./dev.sh test` installs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use bevy_calling::pattern::{self, FrameStamp};
use call_service::{CallService, ServiceConfig};
use serde_json::Value;

/// The camera pictures' size (the app's bots and synthetic camera draw 640x360).
const PICTURE: (u32, u32) = (640, 360);
/// The size of the screen a bot shares.
const SCREEN: (u32, u32) = (1280, 720);
/// The token secret of the service a test starts itself.
const SECRET: &str = "app-screenshots-secret";
/// Long enough for a debug build on two cores to sign in, call, and start four bots.
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Screenshot {
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    sidecar: Value,
}

impl Screenshot {
    fn load(path: &Path) -> Self {
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("{}: {e} (the app saved no screenshot)", path.display()));
        let mut reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .expect("a PNG");
        let mut buffer = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut buffer).expect("a frame");
        let channels = info.color_type.samples();
        let rgb = buffer[..info.buffer_size()]
            .chunks(channels)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        let json = std::fs::read_to_string(path.with_extension("png.json")).expect("a sidecar");
        Self {
            rgb,
            width: info.width,
            height: info.height,
            sidecar: serde_json::from_str(&json).expect("sidecar JSON"),
        }
    }

    fn pixel(&self, x: f32, y: f32) -> [u8; 3] {
        let x = (x.round().max(0.0) as u32).min(self.width - 1);
        let y = (y.round().max(0.0) as u32).min(self.height - 1);
        let at = ((y * self.width + x) * 3) as usize;
        [self.rgb[at], self.rgb[at + 1], self.rgb[at + 2]]
    }

    /// The stamp a tile shows, reading the picture through the tile's corners on screen (the
    /// perspective mapping they define, since tiles face the viewer from an arc).
    fn stamp_in(&self, tile: &Value) -> Option<FrameStamp> {
        let (w, h) = PICTURE;
        pattern::read_quad(w, h, corners(tile), |x, y| self.pixel(x as f32, y as f32))
    }

    /// How many distinct colours a drawn rectangle (`[left, top, right, bottom]`) holds: a
    /// panel with text and buttons has many, an empty one or the 3D view's background few.
    fn colours_in(&self, rect: &Value) -> usize {
        let r: Vec<f32> = (0..4)
            .map(|k| rect[k].as_f64().unwrap_or(0.0) as f32)
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut y = r[1];
        while y < r[3] {
            let mut x = r[0];
            while x < r[2] {
                seen.insert(self.pixel(x, y));
                x += 1.0;
            }
            y += 1.0;
        }
        seen.len()
    }

    fn tiles(&self) -> Vec<Value> {
        self.sidecar["tiles"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Runs the app under Xvfb on `script` (with `{dir}` replaced by a fresh directory) until it
/// finishes; returns the directory.
fn run_app(name: &str, size: &str, script: &str) -> PathBuf {
    let (app, dir) = start_app(name, size, script, &[]);
    app.finish();
    dir
}

/// The app performing a scenario, killed if dropped before it finished.
struct RunningApp(Child, Instant);

impl RunningApp {
    /// Waits for the scenario to end; it must succeed within [`RUN_LIMIT`].
    fn finish(mut self) {
        let status = loop {
            if let Some(status) = self.0.try_wait().expect("the app runs") {
                break status;
            }
            assert!(
                self.1.elapsed() < RUN_LIMIT,
                "the app did not finish its scenario within {RUN_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(status.success(), "the app's scenario failed: {status}");
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the app under Xvfb on `script` (with `{dir}` replaced by a fresh directory) with
/// `args` added; returns it and the directory.
fn start_app(name: &str, size: &str, script: &str, args: &[&str]) -> (RunningApp, PathBuf) {
    let dir = std::env::temp_dir().join(format!("app-screenshots-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let script_path = dir.join("scenario.txt");
    std::fs::write(
        &script_path,
        script.replace("{dir}", &dir.to_string_lossy()),
    )
    .unwrap();
    let child = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x720x24"])
        .arg(env!("CARGO_BIN_EXE_call-app"))
        .args(["--name", "Tester", "--size", size, "--synthetic-devices"])
        .args(args)
        .arg("--script")
        .arg(&script_path)
        .env("RUST_LOG", "warn,call_app=info")
        .spawn()
        .expect("xvfb-run starts (apt install xvfb xauth)");
    (RunningApp(child, Instant::now()), dir)
}

#[test]
fn a_group_call_with_four_bots_shows_their_cameras_the_controls_and_the_statistics() {
    let dir = run_app(
        "group",
        "1280x720",
        "wait-for signed-in\n\
         wait 1\n\
         measure 3 {dir}/idle.json\n\
         call-echo\n\
         wait-for video 1\n\
         wait 2\n\
         measure 3 {dir}/echo.json\n\
         screenshot {dir}/echo.png\n\
         wait 2\n\
         hang-up\n\
         wait-for ended\n\
         join-group\n\
         wait-for connected\n\
         add-bots 4\n\
         wait-for video 4\n\
         show stats\n\
         wait 3\n\
         screenshot {dir}/group.png\n\
         bot-shares-screen\n\
         wait-for share\n\
         wait 3\n\
         screenshot {dir}/share.png\n",
    );

    // Drawn on demand: with nothing happening the app sleeps (a 1 s tick); a tile's new
    // pictures wake it (30 pictures a second arrive; each frame takes tens of ms here).
    let idle = frames_per_second(&dir.join("idle.json"));
    assert!(idle < 3.0, "the idle app drew {idle} frames a second");
    let echo = frames_per_second(&dir.join("echo.json"));
    assert!(
        echo > 4.0,
        "the app drew {echo} frames a second of a 30 fps tile"
    );

    // The echo test shows the person's own camera, echoed through the service.
    let echo = Screenshot::load(&dir.join("echo.png"));
    let tiles = echo.tiles();
    assert_eq!(
        tiles.len(),
        1,
        "one tile in the echo call: {}",
        echo.sidecar
    );
    assert!(
        echo.stamp_in(&tiles[0]).is_some(),
        "the echo tile shows no stamped camera picture: {}",
        echo.sidecar
    );

    let group = Screenshot::load(&dir.join("group.png"));
    let tiles = group.tiles();
    assert_eq!(tiles.len(), 4, "four bots on stage: {}", group.sidecar);
    let mut sources = Vec::new();
    for tile in &tiles {
        let stamp = group
            .stamp_in(tile)
            .unwrap_or_else(|| panic!("no valid stamp in tile {tile}"));
        sources.push(stamp.source);
    }
    sources.sort_unstable();
    sources.dedup();
    assert_eq!(
        sources.len(),
        4,
        "each tile shows a different camera: {sources:?}"
    );

    let controls = group.colours_in(&group.sidecar["controls"]);
    assert!(
        controls > 8,
        "the in-call bar has {controls} colours: not drawn"
    );
    let stats = group.colours_in(&group.sidecar["stats"]);
    assert!(
        stats > 8,
        "the statistics window has {stats} colours: not drawn"
    );

    // A bot shares a 1280x720 "screen": a large panel shows it, next to the four tiles.
    let share = Screenshot::load(&dir.join("share.png"));
    assert_eq!(share.tiles().len(), 4, "{}", share.sidecar);
    let panels = share.sidecar["share"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(panels.len(), 1, "one share panel: {}", share.sidecar);
    let panel = serde_json::json!({ "corners": panels[0] });
    let (w, h) = SCREEN;
    let shared = pattern::read_quad(w, h, corners(&panel), |x, y| {
        share.pixel(x as f32, y as f32)
    })
    .unwrap_or_else(|| panic!("no valid stamp on the share panel: {}", share.sidecar));
    assert!(
        !sources.contains(&shared.source),
        "the panel shows the shared screen, not a camera"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tiles_too_small_to_see_are_unsubscribed_and_subscribed_again_when_they_grow() {
    // A small window: with the side panels open the stage leaves each of four tiles under the
    // app's 48-pixel minimum, without them over twice that.
    let dir = run_app(
        "small",
        "560x360",
        "wait-for signed-in\n\
         join-group\n\
         wait-for connected\n\
         add-bots 4\n\
         wait-for video 4\n\
         wait 2\n\
         screenshot {dir}/large.png\n\
         show roster\n\
         show devices\n\
         show stats\n\
         wait 4\n\
         screenshot {dir}/small.png\n\
         hide roster\n\
         hide devices\n\
         hide stats\n\
         wait-for video 4\n\
         wait 2\n\
         screenshot {dir}/again.png\n",
    );
    let seen = |name: &str| {
        let shot = Screenshot::load(&dir.join(name));
        let widths: Vec<f64> = shot.tiles().iter().map(tile_width).collect();
        let kbps = shot.sidecar["received_video_kbps"].as_u64().unwrap_or(0);
        (widths, kbps, shot.sidecar)
    };
    for name in ["large.png", "again.png"] {
        let (widths, kbps, sidecar) = seen(name);
        assert!(
            widths.len() == 4 && widths.iter().all(|&w| w >= 80.0),
            "{name}: four large tiles: {sidecar}"
        );
        assert!(kbps > 400, "{name}: four cameras received at {kbps} kbit/s");
    }
    let (widths, kbps, sidecar) = seen("small.png");
    assert!(
        widths.len() == 4 && widths.iter().all(|&w| w < 48.0),
        "small.png: four tiny tiles: {sidecar}"
    );
    assert!(
        kbps < 20,
        "small.png: tiny tiles still receive {kbps} kbit/s of video"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// How many frames a second a `measure` step saw.
fn frames_per_second(report: &Path) -> f64 {
    let text = std::fs::read_to_string(report).expect("the measurement was written");
    let value: Value = serde_json::from_str(&text).expect("JSON");
    value["frames_per_second"]
        .as_f64()
        .expect("frames_per_second")
}

/// A tile's corners on screen from its sidecar entry: top left, top right, bottom right,
/// bottom left (off screen where missing).
fn corners(tile: &Value) -> [[f64; 2]; 4] {
    [0, 1, 2, 3].map(|k| {
        let c = &tile["corners"][k];
        [c[0].as_f64().unwrap_or(-1.0), c[1].as_f64().unwrap_or(-1.0)]
    })
}

/// A tile's width on screen, across its top edge.
fn tile_width(tile: &Value) -> f64 {
    let [[x0, y0], [x1, y1], ..] = corners(tile);
    (x1 - x0).hypot(y1 - y0)
}

#[test]
fn a_bot_process_calls_and_the_person_answers_from_the_prompt() {
    let service = CallService::start(ServiceConfig {
        secret: Some(SECRET.as_bytes().to_vec()),
        ..Default::default()
    })
    .expect("the service starts");
    let url = service.ws_url();
    let shared = ["--server", url.as_str(), "--secret", SECRET];
    let (app, dir) = start_app(
        "incoming",
        "1280x720",
        "wait-for signed-in\n\
         screenshot {dir}/ready.png\n\
         wait-for incoming\n\
         wait 1\n\
         screenshot {dir}/ringing.png\n\
         accept\n\
         wait-for video 1\n\
         wait 2\n\
         screenshot {dir}/answered.png\n",
        &shared,
    );
    // The bot calls once the person is signed in (a call to someone offline ends at once).
    let started = Instant::now();
    while !dir.join("ready.png").exists() {
        assert!(started.elapsed() < RUN_LIMIT, "the app never signed in");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut bot = Command::new(env!("CARGO_BIN_EXE_call-app"))
        .args(["--bot", "--name", "Caller", "--call", "tester"])
        .args(shared)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("the bot starts");
    app.finish();
    let _ = bot.kill();
    let _ = bot.wait();

    let ringing = Screenshot::load(&dir.join("ringing.png"));
    let prompt = &ringing.sidecar["incoming"];
    assert!(prompt.is_array(), "no prompt drawn: {}", ringing.sidecar);
    let colours = ringing.colours_in(prompt);
    assert!(colours > 8, "the prompt has {colours} colours: not drawn");
    assert_eq!(
        ringing.sidecar["call_state"], "Incoming",
        "{}",
        ringing.sidecar
    );

    let answered = Screenshot::load(&dir.join("answered.png"));
    assert_eq!(answered.sidecar["call_state"], "Connected");
    assert!(answered.sidecar["incoming"].is_null(), "the prompt stayed");
    let tiles = answered.tiles();
    assert_eq!(tiles.len(), 1, "the caller's tile: {}", answered.sidecar);
    assert!(
        answered.stamp_in(&tiles[0]).is_some(),
        "the caller's camera is not on its tile: {}",
        answered.sidecar
    );
    let _ = std::fs::remove_dir_all(dir);
}
