//! A private X server (Xvfb) per test, and windows of known pixels on it, made with x11rb.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, PropMode, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

/// An X server of the test's own, stopped when dropped (also when the test panics).
pub struct XServer {
    child: Child,
    /// Its display name, such as `:93`.
    pub display: String,
}

impl XServer {
    /// Starts Xvfb with a black `width`x`height` screen on a display number it picks itself
    /// (`-displayfd`: no race with other tests), once it accepts connections.
    pub fn start(width: u32, height: u32) -> Self {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-br", "-nolisten", "tcp", "-screen", "0"])
            .arg(format!("{width}x{height}x24"))
            .stdout(Stdio::from(writer))
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed (./dev.sh test installs it)");
        let mut line = String::new();
        BufReader::new(reader)
            .read_line(&mut line)
            .expect("Xvfb tells its display number");
        let number: u32 = line.trim().parse().expect("Xvfb started");
        Self {
            child,
            display: format!(":{number}"),
        }
    }
}

impl Drop for XServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A top-level window showing a fixed picture, named for the screen-source list.
pub struct TestWindow {
    conn: RustConnection,
    /// Its X id.
    pub id: Window,
}

impl TestWindow {
    /// Opens a window at `at` of `size` on `display`, titled `title` with application class
    /// `class`, showing `pixel(x, y)` (RGB). The picture is the window's background, so the
    /// server redraws it whenever it is uncovered or redirected.
    pub fn open(
        display: &str,
        title: &str,
        class: &str,
        at: (i16, i16),
        size: (u16, u16),
        pixel: impl Fn(u32, u32) -> [u8; 3],
    ) -> Self {
        let (conn, screen) = x11rb::connect(Some(display)).expect("the test's X server");
        let screen = conn.setup().roots[screen].clone();
        let (w, h) = size;
        let bgrx: Vec<u8> = (0..u32::from(h))
            .flat_map(|y| (0..u32::from(w)).map(move |x| (x, y)))
            .flat_map(|(x, y)| {
                let [r, g, b] = pixel(x, y);
                [b, g, r, 0]
            })
            .collect();
        let picture = conn.generate_id().expect("an id");
        conn.create_pixmap(screen.root_depth, picture, screen.root, w, h)
            .expect("a pixmap");
        let gc = conn.generate_id().expect("an id");
        conn.create_gc(gc, picture, &CreateGCAux::new())
            .expect("a GC");
        conn.put_image(
            ImageFormat::Z_PIXMAP,
            picture,
            gc,
            w,
            h,
            0,
            0,
            0,
            screen.root_depth,
            &bgrx,
        )
        .expect("the picture");
        let id = conn.generate_id().expect("an id");
        let aux = CreateWindowAux::new().background_pixmap(picture);
        conn.create_window(
            screen.root_depth,
            id,
            screen.root,
            at.0,
            at.1,
            w,
            h,
            0,
            WindowClass::INPUT_OUTPUT,
            screen.root_visual,
            &aux,
        )
        .expect("a window");
        let set = |property: AtomEnum, value: &[u8]| {
            conn.change_property8(PropMode::REPLACE, id, property, AtomEnum::STRING, value)
                .expect("a property");
        };
        set(AtomEnum::WM_NAME, title.as_bytes());
        set(AtomEnum::WM_CLASS, format!("{class}\0{class}\0").as_bytes());
        conn.map_window(id).expect("mapped");
        conn.free_pixmap(picture).expect("freed");
        conn.free_gc(gc).expect("freed");
        conn.sync().expect("the server did it all");
        Self { conn, id }
    }

    /// Closes the window (as an application quitting does).
    pub fn close(self) {
        self.conn.destroy_window(self.id).expect("destroyed");
        self.conn.sync().expect("the server did it");
    }
}

/// A picture with detail at every scale, like a screen's: a colour gradient under a grid of
/// 16-pixel blocks and thin lines. `seed` makes different windows differ.
pub fn known_pixel(seed: u8) -> impl Fn(u32, u32) -> [u8; 3] {
    move |x, y| {
        let block = ((x / 16 + y / 16) % 2) as u8 * 60;
        // Two pixels wide on even columns and rows: 4:2:0 keeps their colour.
        let line = if x % 40 < 2 || y % 30 < 2 { 90 } else { 0 };
        [
            ((x * 2) as u8).wrapping_add(seed) / 2 + block,
            ((y * 2) as u8) / 2 + line,
            seed.wrapping_mul(3) / 2 + block / 2,
        ]
    }
}

/// A rectangle of pixels: x, y, width, height.
pub type Rect = (u32, u32, u32, u32);

/// The RGBA of `rect` inside an RGBA picture `width` wide.
pub fn crop(rgba: &[u8], width: u32, rect: Rect) -> Vec<u8> {
    let (x, y, w, h) = rect;
    (y..y + h)
        .flat_map(|row| {
            let start = ((row * width + x) * 4) as usize;
            rgba[start..start + (w * 4) as usize].iter().copied()
        })
        .collect()
}

/// `pixel` as RGBA over a `width`x`height` picture.
pub fn rgba_of(pixel: impl Fn(u32, u32) -> [u8; 3], width: u32, height: u32) -> Vec<u8> {
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| {
            let [r, g, b] = pixel(x, y);
            [r, g, b, 255]
        })
        .collect()
}

/// Panics unless the mean colour of `rect` in an RGBA picture `width` wide is within 15 of
/// `colour` in each channel (a flat area after 4:2:0 and H.264).
pub fn assert_colour(rgba: &[u8], width: u32, rect: Rect, colour: [u8; 3]) {
    let pixels = crop(rgba, width, rect);
    let n = (pixels.len() / 4) as f32;
    let mean = |c: usize| {
        pixels
            .iter()
            .skip(c)
            .step_by(4)
            .map(|&v| v as f32)
            .sum::<f32>()
            / n
    };
    let got = [mean(0), mean(1), mean(2)];
    let off = (0..3)
        .map(|c| (got[c] - colour[c] as f32).abs())
        .fold(0.0, f32::max);
    assert!(off < 15.0, "{rect:?} shows {got:?}, expected {colour:?}");
}
