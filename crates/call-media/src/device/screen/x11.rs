//! Screens and application windows as video sources, on X11 through x11rb: the whole screen of
//! a display, and each application window with its title and application (`WM_CLASS`).
//!
//! Each display is watched by one thread of the process that keeps its list current as windows
//! open and close (the root window's substructure events). A shared window is captured from its
//! own off-screen pixmap through the Composite extension, so a window covering it never shows in
//! the share; the share ends with [`SourceEnd::WindowClosed`] when the window goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::composite::{ConnectionExt as _, Redirect};
use x11rb::protocol::render::Pictvisual;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, ImageFormat,
    ImageOrder, MapState, Visualid, Window, WindowClass,
};
use x11rb::rust_connection::RustConnection;

use super::x11_scale::{self, Area};
use super::{Grab, Watch, fitted, paced};
use crate::device::{Camera, DeviceError, DeviceId, DeviceInfo, DeviceKind, SourceEnd};
use crate::video::{Packed, VideoFrame};

const PREFIX: &str = "x11:";

/// What a screen source's id names on its display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Screen,
    Window(Window),
}

fn id(display: &str, target: Target) -> DeviceId {
    match target {
        Target::Screen => DeviceId(format!("{PREFIX}screen@{display}")),
        Target::Window(w) => DeviceId(format!("{PREFIX}window:{w:#x}@{display}")),
    }
}

fn parse(id: &DeviceId) -> Option<(String, Target)> {
    let (target, display) = id.0.strip_prefix(PREFIX)?.rsplit_once('@')?;
    let target = match target {
        "screen" => Target::Screen,
        w => Target::Window(u32::from_str_radix(w.strip_prefix("window:0x")?, 16).ok()?),
    };
    Some((display.to_owned(), target))
}

/// Whether `id` names a screen source.
pub(crate) fn is_screen(id: &DeviceId) -> bool {
    id.0.starts_with(PREFIX)
}

/// The display the process shows on (`DISPLAY`), if any.
pub(crate) fn default_display() -> Option<String> {
    std::env::var("DISPLAY").ok().filter(|d| !d.is_empty())
}

/// How long a display that could not be reached lists nothing before it is tried again (a
/// lost one is tried again at once: a new server may have its name).
const RETRY: Duration = Duration::from_secs(5);

impl Watch {
    /// A watch of a display that could not be reached, tried again after [`RETRY`].
    fn failed(why: String, generation: u64) -> Self {
        let watch = Self::listing(Vec::new(), generation);
        watch.fail(why, Instant::now() + RETRY);
        watch
    }

    /// Whether a watch asked for now should be this one: it lists, or it is not yet time to
    /// try its display again.
    fn current(&self) -> bool {
        self.failure()
            .is_none_or(|(retry_at, _)| Instant::now() < retry_at)
    }
}

/// The watch of display `server`, started (and listed once) the first time it is asked for. A
/// display that cannot be reached lists nothing, and is tried again after [`RETRY`].
fn watch(server: &str) -> Arc<Watch> {
    static WATCHES: OnceLock<Mutex<HashMap<String, Arc<Watch>>>> = OnceLock::new();
    let mut watches = WATCHES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match watches.get(server) {
        Some(w) if w.current() => return w.clone(),
        _ => {}
    }
    // A watch that replaces a failed one counts on from it, so a list that appears is noticed.
    let generation = watches.get(server).map_or(0, |w| w.generation() + 1);
    let connected = Display::connect(server).and_then(|d| {
        let events = ChangeWindowAttributesAux::new().event_mask(EventMask::SUBSTRUCTURE_NOTIFY);
        d.conn
            .change_window_attributes(d.root, &events)
            .map_err(|e| e.to_string())?;
        let listed = d.list(server).map_err(|e| e.to_string())?;
        Ok((d, listed))
    });
    let (d, listed) = match connected {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!("no screen sources on display {server}: {e}");
            let failed = Arc::new(Watch::failed(e, generation));
            watches.insert(server.to_owned(), failed.clone());
            return failed;
        }
    };
    let watch = Arc::new(Watch::listing(listed, generation));
    let (name, watching) = (server.to_owned(), watch.clone());
    let spawned = std::thread::Builder::new()
        .name("screen-watch".into())
        .spawn(move || {
            // Each batch of window events lists the server again; a lost server lists nothing.
            while d.conn.wait_for_event().is_ok() {
                while let Ok(Some(_)) = d.conn.poll_for_event() {}
                match d.list(&name) {
                    Ok(listed) => watching.store(listed),
                    Err(_) => break,
                }
            }
            watching.fail("the display went away".into(), Instant::now());
        });
    if let Err(e) = spawned {
        tracing::warn!("windows opening and closing on {server} will not be noticed: {e}");
    }
    watches.insert(server.to_owned(), watch.clone());
    watch
}

/// The screen sources of `display`: its whole screen first, then its application windows.
pub(crate) fn list(display: &str) -> Vec<DeviceInfo> {
    watch(display).sources()
}

/// Why `display` cannot be reached, if it cannot.
pub(crate) fn unreachable(display: &str) -> Option<String> {
    watch(display).failure().map(|(_, why)| why)
}

/// Bumped each time `display`'s list changes.
pub(crate) fn generation(display: &str) -> u64 {
    watch(display).generation()
}

/// A connection to a display, with the atoms sources are named by.
struct Display {
    conn: RustConnection,
    root: Window,
    root_visual: Visualid,
    root_depth: u8,
    size: (u16, u16),
    /// Render's picture formats, asked for the first time a picture must be scaled.
    formats: std::cell::OnceCell<Vec<Pictvisual>>,
    net_wm_name: Atom,
    utf8_string: Atom,
    net_client_list: Atom,
}

type Failed = Box<dyn std::error::Error>;

impl Display {
    fn connect(display: &str) -> Result<Self, String> {
        let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
        let root = &conn.setup().roots[screen];
        let (root, root_visual, root_depth, size) = (
            root.root,
            root.root_visual,
            root.root_depth,
            (root.width_in_pixels, root.height_in_pixels),
        );
        let atom = |name: &[u8]| -> Result<Atom, String> {
            let cookie = conn.intern_atom(false, name).map_err(|e| e.to_string())?;
            Ok(cookie.reply().map_err(|e| e.to_string())?.atom)
        };
        Ok(Self {
            net_wm_name: atom(b"_NET_WM_NAME")?,
            utf8_string: atom(b"UTF8_STRING")?,
            net_client_list: atom(b"_NET_CLIENT_LIST")?,
            conn,
            root,
            root_visual,
            root_depth,
            size,
            formats: std::cell::OnceCell::new(),
        })
    }

    /// The whole screen, then every application window: the window manager's client list where
    /// one runs, else the mapped top-level windows. Windows without a title are left out.
    fn list(&self, display: &str) -> Result<Vec<DeviceInfo>, Failed> {
        let screen = DeviceInfo {
            id: id(display, Target::Screen),
            name: format!("Entire screen ({}x{})", self.size.0, self.size.1),
            kind: DeviceKind::Screen,
            is_synthetic: false,
            facing: None,
            application: None,
            is_default: true,
        };
        let clients = self
            .conn
            .get_property(
                false,
                self.root,
                self.net_client_list,
                AtomEnum::WINDOW,
                0,
                4096,
            )?
            .reply()?;
        let windows: Vec<Window> = match clients.value32() {
            Some(list) if clients.value_len > 0 => list.collect(),
            _ => self.conn.query_tree(self.root)?.reply()?.children,
        };
        let mut sources = vec![screen];
        for window in windows {
            // A window may close while it is being looked at: it is simply not listed.
            if let Ok(Some(source)) = self.describe(display, window) {
                sources.push(source);
            }
        }
        Ok(sources)
    }

    fn describe(&self, display: &str, window: Window) -> Result<Option<DeviceInfo>, Failed> {
        let attributes = self.conn.get_window_attributes(window)?.reply()?;
        if attributes.map_state != MapState::VIEWABLE
            || attributes.override_redirect
            || attributes.class != WindowClass::INPUT_OUTPUT
        {
            return Ok(None);
        }
        let text = |property: Atom, kind: Atom| -> Result<String, Failed> {
            let reply = self
                .conn
                .get_property(false, window, property, kind, 0, 1024)?
                .reply()?;
            Ok(String::from_utf8_lossy(&reply.value).into_owned())
        };
        let mut title = text(self.net_wm_name, self.utf8_string)?;
        if title.is_empty() {
            title = text(AtomEnum::WM_NAME.into(), AtomEnum::ANY.into())?;
        }
        if title.is_empty() {
            return Ok(None);
        }
        let class = x11rb::properties::WmClass::get(&self.conn, window)?.reply()?;
        Ok(Some(DeviceInfo {
            id: id(display, Target::Window(window)),
            name: title,
            kind: DeviceKind::Screen,
            is_synthetic: false,
            facing: None,
            application: class.map(|c| String::from_utf8_lossy(c.class()).into_owned()),
            is_default: false,
        }))
    }

    /// One picture of `area` (of the root, or of a window's pixmap) as I420 cropped to even
    /// dimensions, scaled down by the server when larger than [`super::MAX_SHARE`].
    fn grab(&self, area: Area) -> Result<VideoFrame, Failed> {
        let captured_at = Instant::now();
        let (width, height) = fitted(area.size);
        let image = match (width, height) == area.size {
            true => {
                let (x, y) = area.at;
                let request = self.conn.get_image(
                    ImageFormat::Z_PIXMAP,
                    area.drawable,
                    x,
                    y,
                    width,
                    height,
                    !0,
                )?;
                request.reply()?
            }
            false => {
                let formats = match self.formats.get() {
                    Some(formats) => formats,
                    None => {
                        let formats = x11_scale::picture_formats(&self.conn)?;
                        self.formats.get_or_init(|| formats)
                    }
                };
                x11_scale::scaled_image(&self.conn, formats, area, (width, height))?
            }
        };
        let format = self
            .conn
            .setup()
            .pixmap_formats
            .iter()
            .find(|f| f.depth == image.depth);
        let little_endian = self.conn.setup().image_byte_order == ImageOrder::LSB_FIRST;
        if !little_endian || format.is_none_or(|f| f.bits_per_pixel != 32) {
            return Err(format!("unsupported pixel format (depth {})", image.depth).into());
        }
        let (width, height) = (u32::from(width), u32::from(height));
        let mut frame =
            VideoFrame::from_packed(&image.data, Packed::Bgrx, width, height, width * 4);
        frame.captured_at = captured_at;
        Ok(frame)
    }
}

/// What a capture reads from: the root window, or a window's Composite pixmap (and where the
/// window lies in it: its border is around it).
struct Capture {
    display: Display,
    target: Target,
    pixmap: Option<Area>,
}

impl Capture {
    fn start(display: &str, target: Target) -> Result<Self, Failed> {
        let display = Display::connect(display)?;
        if let Target::Window(window) = target {
            display.conn.composite_query_version(0, 4)?.reply()?;
            // Automatic redirection: the server keeps drawing the screen as before, and the
            // window also keeps its own pixels, covered parts included.
            display
                .conn
                .composite_redirect_window(window, Redirect::AUTOMATIC)?
                .check()?;
            let events = ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY);
            display
                .conn
                .change_window_attributes(window, &events)?
                .check()?;
        }
        Ok(Self {
            display,
            target,
            pixmap: None,
        })
    }

    fn name_pixmap(&mut self, window: Window) -> Result<Area, Failed> {
        let conn = &self.display.conn;
        let geometry = conn.get_geometry(window)?.reply()?;
        let visual = conn.get_window_attributes(window)?.reply()?.visual;
        let pixmap = conn.generate_id()?;
        conn.composite_name_window_pixmap(window, pixmap)?.check()?;
        let border = geometry.border_width as i16;
        let named = Area {
            drawable: pixmap,
            visual,
            depth: geometry.depth,
            at: (border, border),
            size: (geometry.width, geometry.height),
        };
        self.pixmap = Some(named);
        Ok(named)
    }

    fn release(&mut self) {
        if let Some(named) = self.pixmap.take() {
            let _ = self.display.conn.free_pixmap(named.drawable);
        }
    }

    /// Whether the window no longer exists.
    fn gone(&self, window: Window) -> bool {
        let conn = &self.display.conn;
        !conn
            .get_window_attributes(window)
            .is_ok_and(|c| c.reply().is_ok())
    }
}

impl Grab for Capture {
    fn next(&mut self) -> Result<VideoFrame, SourceEnd> {
        let lost = |e: Failed| SourceEnd::Failed(e.to_string());
        let Target::Window(window) = self.target else {
            let d = &self.display;
            let root = Area {
                drawable: d.root,
                visual: d.root_visual,
                depth: d.root_depth,
                at: (0, 0),
                size: d.size,
            };
            return d.grab(root).map_err(lost);
        };
        while let Some(event) = self
            .display
            .conn
            .poll_for_event()
            .map_err(|e| lost(e.into()))?
        {
            match event {
                Event::DestroyNotify(e) if e.window == window => {
                    return Err(SourceEnd::WindowClosed);
                }
                // A new size or a new mapping gives the window a new pixmap.
                Event::ConfigureNotify(_) | Event::MapNotify(_) => self.release(),
                _ => {}
            }
        }
        let picture = match self.pixmap {
            Some(named) => Ok(named),
            None => self.name_pixmap(window),
        }
        .and_then(|area| self.display.grab(area));
        // A window that went away between its events and these requests closed.
        picture.map_err(|e| match self.gone(window) {
            true => SourceEnd::WindowClosed,
            false => lost(e),
        })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.release();
    }
}

/// Opens a screen source (as listed by [`list`]), capturing at [`super::SCREEN_FPS`].
pub(crate) fn open(id: &DeviceId) -> Result<Camera, DeviceError> {
    let Some((display, target)) = parse(id) else {
        return Err(DeviceError::NotFound(id.clone()));
    };
    let capture = Capture::start(&display, target).map_err(|e| DeviceError::Open {
        id: id.clone(),
        reason: e.to_string(),
    })?;
    paced(id, capture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_display_and_the_window() {
        for target in [Target::Screen, Target::Window(0x40_0001)] {
            let id = id(":99", target);
            assert_eq!(parse(&id), Some((":99".to_owned(), target)), "{id}");
        }
        assert_eq!(
            id(":0", Target::Window(0x40_0001)).0,
            "x11:window:0x400001@:0"
        );
        assert_eq!(parse(&DeviceId("x11:window:zz@:0".into())), None);
    }

    #[test]
    fn bgrx_converts_to_even_i420() {
        let (w, h) = (17, 9);
        let bgrx: Vec<u8> = (0..w * h).flat_map(|_| [40u8, 40, 200, 0]).collect();
        let frame = VideoFrame::from_packed(&bgrx, Packed::Bgrx, w, h, w * 4);
        assert_eq!((frame.width, frame.height), (16, 8));
        let mut rgba = vec![0; 16 * 8 * 4];
        frame.to_rgba(&mut rgba);
        let p = &rgba[(3 * 16 + 5) * 4..][..3];
        assert!(
            p[0].abs_diff(200) < 6 && p[1].abs_diff(40) < 6 && p[2].abs_diff(40) < 6,
            "{p:?}"
        );
    }
}
