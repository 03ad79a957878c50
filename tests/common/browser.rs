//! Headless Chromium on the web client the call service serves, driven through chromedriver
//! (fantoccini), with Chromium's fake camera and microphone playing files of ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy_calling::pattern::{self, FrameStamp};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use super::DEADLINE;

/// Chromium's own binary: `/usr/bin/chromium` is Debian's wrapper script.
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// A headless Chromium with one page, closed when dropped (also when the test panics).
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<fantoccini::Client>,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Opens `url` in a fresh Chromium whose camera plays the Y4M `camera` and whose microphone
    /// plays the WAV `microphone`, both in a loop; `extra` are more command-line switches.
    pub fn open(url: &str, camera: &Path, microphone: &Path, extra: &[String]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (./dev.sh test installs chromium-driver)");
        let profile = std::env::temp_dir().join(format!("bc_chromium_{port}"));
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--use-fake-ui-for-media-stream".to_owned(),
            "--use-fake-device-for-media-stream".to_owned(),
            format!("--use-file-for-fake-video-capture={}", camera.display()),
            format!("--use-file-for-fake-audio-capture={}", microphone.display()),
            "--autoplay-policy=no-user-gesture-required".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend_from_slice(extra);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let webdriver = format!("http://127.0.0.1:{port}");
        let client = runtime.block_on(async {
            let start = Instant::now();
            loop {
                let connected = fantoccini::ClientBuilder::new(HttpConnector::new())
                    .capabilities(capabilities.clone())
                    .connect(&webdriver)
                    .await;
                match connected {
                    Ok(client) => break client,
                    Err(e) if start.elapsed() > DEADLINE => panic!("no browser session: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        runtime
            .block_on(client.goto(url))
            .unwrap_or_else(|e| panic!("the browser opens {url}: {e}"));
        Self {
            runtime,
            client: Some(client),
            driver,
            profile,
        }
    }

    /// Runs `script` as a function body in the page and returns its result; a returned promise
    /// is awaited.
    pub fn eval(&self, script: &str) -> Value {
        let client = self.client.as_ref().expect("open");
        self.runtime
            .block_on(client.execute(script, Vec::new()))
            .unwrap_or_else(|e| panic!("script `{script}` failed: {e}"))
    }

    /// The page's state (`bc.state()`).
    pub fn state(&self) -> Value {
        self.eval("return bc.state()")
    }

    /// The page's media counters (`bc.stats()`).
    pub fn stats(&self) -> Value {
        self.eval("return bc.stats()")
    }

    /// The process id of this browser's chromedriver, which every Chromium process descends
    /// from.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Writes `frames` frames of the stamped test pattern of `source` at 640x360 to a Y4M file in
/// the temp folder, for Chromium's fake camera (which loops it at 30 fps); the caller removes it.
pub fn pattern_y4m(source: u8, frames: u32, tag: &str) -> PathBuf {
    let (width, height) = (640, 360);
    let path = std::env::temp_dir().join(format!("bc_{tag}_{}.y4m", std::process::id()));
    let mut out = format!("YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for counter in 0..frames {
        let stamp = FrameStamp {
            source,
            counter,
            micros: 0,
        };
        let frame = pattern::draw(stamp, width, height);
        out.extend_from_slice(b"FRAME\n");
        for plane in [&frame.y, &frame.u, &frame.v] {
            out.extend_from_slice(plane);
        }
    }
    std::fs::write(&path, out).expect("a temp Y4M");
    path
}
