//! Screens and application windows of Windows and macOS as video sources, through xcap: each
//! monitor, and each application window with its title and application.
//!
//! xcap tells of no window opening or closing, so one thread of the process lists the desktop
//! again every [`POLL`]. A shared source is found again by its id for each picture: a window
//! that is no longer there ends its share with [`SourceEnd::WindowClosed`].

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use xcap::image::imageops::{self, FilterType};
use xcap::{Monitor, XCapResult};

use super::{Grab, Watch, fitted, paced};
use crate::device::{Camera, DeviceError, DeviceId, DeviceInfo, DeviceKind, SourceEnd};
use crate::video::{Packed, VideoFrame};

const PREFIX: &str = "desktop:";

/// The one display listed here: the desktop the process runs on.
const DESKTOP: &str = "desktop";

/// How often the list of screens and windows is read again.
const POLL: Duration = Duration::from_secs(1);

/// What a screen source's id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Monitor(u32),
    Window(u32),
}

fn id(target: Target) -> DeviceId {
    match target {
        Target::Monitor(m) => DeviceId(format!("{PREFIX}monitor:{m}")),
        Target::Window(w) => DeviceId(format!("{PREFIX}window:{w}")),
    }
}

fn parse(id: &DeviceId) -> Option<Target> {
    let (kind, number) = id.0.strip_prefix(PREFIX)?.split_once(':')?;
    let number = number.parse().ok()?;
    match kind {
        "monitor" => Some(Target::Monitor(number)),
        "window" => Some(Target::Window(number)),
        _ => None,
    }
}

/// Whether `id` names a screen source.
pub(crate) fn is_screen(id: &DeviceId) -> bool {
    id.0.starts_with(PREFIX)
}

/// The desktop, listed with the hardware.
pub(crate) fn default_display() -> Option<String> {
    Some(DESKTOP.to_owned())
}

/// The desktop's watch, started (and listed once) the first time it is asked for.
fn watch() -> Arc<Watch> {
    static WATCH: OnceLock<Arc<Watch>> = OnceLock::new();
    WATCH
        .get_or_init(|| {
            let watch = Arc::new(Watch::listing(Vec::new(), 0));
            relist(&watch);
            let watching = watch.clone();
            let spawned = std::thread::Builder::new()
                .name("screen-watch".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(POLL);
                        relist(&watching);
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!("windows opening and closing will not be noticed: {e}");
            }
            watch
        })
        .clone()
}

fn relist(watch: &Watch) {
    match listed() {
        Ok(sources) => watch.store(sources),
        Err(e) => watch.fail(e.to_string(), Instant::now() + POLL),
    }
}

/// Every monitor (the primary one the default), then every application window with a title
/// that is not minimized.
fn listed() -> XCapResult<Vec<DeviceInfo>> {
    let source = |target, name, application, is_default| DeviceInfo {
        id: id(target),
        name,
        kind: DeviceKind::Screen,
        is_synthetic: false,
        facing: None,
        application,
        is_default,
    };
    let mut sources = Vec::new();
    for monitor in Monitor::all()? {
        let name = format!(
            "Entire screen: {} ({}x{})",
            monitor.name()?,
            monitor.width()?,
            monitor.height()?
        );
        let target = Target::Monitor(monitor.id()?);
        sources.push(source(target, name, None, monitor.is_primary()?));
    }
    for window in xcap::Window::all()? {
        // A window may close while it is being looked at: it is simply not listed.
        let described = (|| {
            let title = window.title()?;
            let shown = !title.is_empty() && !window.is_minimized()?;
            let target = Target::Window(window.id()?);
            XCapResult::Ok(shown.then(|| source(target, title, window.app_name().ok(), false)))
        })();
        sources.extend(described.ok().flatten());
    }
    Ok(sources)
}

/// The desktop's screens and windows; nothing for any other display.
pub(crate) fn list(display: &str) -> Vec<DeviceInfo> {
    match display == DESKTOP {
        true => watch().sources(),
        false => Vec::new(),
    }
}

/// Why `display` cannot be listed, if it cannot.
pub(crate) fn unreachable(display: &str) -> Option<String> {
    match display == DESKTOP {
        true => watch().failure().map(|(_, why)| why),
        false => Some(format!("only the desktop (`{DESKTOP}`) is listed here")),
    }
}

/// Bumped each time the desktop's list changes.
pub(crate) fn generation(display: &str) -> u64 {
    match display == DESKTOP {
        true => watch().generation(),
        false => 0,
    }
}

/// A monitor or window being captured, found again by its id for each picture.
struct Capture(Target);

impl Capture {
    fn image(&self) -> Result<Option<xcap::image::RgbaImage>, xcap::XCapError> {
        Ok(match self.0 {
            Target::Monitor(m) => {
                match Monitor::all()?.into_iter().find(|s| s.id().ok() == Some(m)) {
                    Some(monitor) => Some(monitor.capture_image()?),
                    None => None,
                }
            }
            Target::Window(w) => {
                let windows = xcap::Window::all()?;
                match windows.into_iter().find(|s| s.id().ok() == Some(w)) {
                    Some(window) => Some(window.capture_image()?),
                    None => None,
                }
            }
        })
    }
}

impl Grab for Capture {
    fn next(&mut self) -> Result<VideoFrame, SourceEnd> {
        let captured_at = Instant::now();
        let image = match self.image() {
            Ok(Some(image)) => image,
            Ok(None) if matches!(self.0, Target::Window(_)) => return Err(SourceEnd::WindowClosed),
            Ok(None) => return Err(SourceEnd::Failed("the screen went away".into())),
            Err(e) => return Err(SourceEnd::Failed(e.to_string())),
        };
        let size = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let (width, height) = fitted((size(image.width()), size(image.height())));
        let (width, height) = (u32::from(width), u32::from(height));
        let image = match (width, height) == image.dimensions() {
            true => image,
            false => imageops::resize(&image, width, height, FilterType::Triangle),
        };
        let mut frame =
            VideoFrame::from_packed(image.as_raw(), Packed::Rgba, width, height, width * 4);
        frame.captured_at = captured_at;
        Ok(frame)
    }
}

/// Opens a screen source (as listed by [`list`]), capturing at [`super::SCREEN_FPS`].
pub(crate) fn open(id: &DeviceId) -> Result<Camera, DeviceError> {
    match parse(id) {
        Some(target) => paced(id, Capture(target)),
        None => Err(DeviceError::NotFound(id.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_monitor_or_the_window() {
        for target in [Target::Monitor(65537), Target::Window(0x40_0001)] {
            assert_eq!(parse(&id(target)), Some(target));
        }
        assert_eq!(id(Target::Window(7)).0, "desktop:window:7");
        assert_eq!(parse(&DeviceId("desktop:window:zz".into())), None);
    }
}
