//! The process's hardware devices, listed once and kept current by one polling thread.
//!
//! Neither cpal nor nokhwa tells when a device comes or goes, so a thread lists them again
//! every [`POLL`] and bumps a generation counter when the list changed. Hardware belongs to the
//! process, not to a [`super::DeviceManager`]: every manager reads the same snapshot, so any
//! number of managers (one per app, fifty apps in a load test) cost one enumeration a period.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{DeviceInfo, DeviceKind, host, host_camera};

/// How often the hardware is listed again.
pub const POLL: Duration = Duration::from_secs(1);

struct Snapshot {
    devices: Mutex<Arc<[DeviceInfo]>>,
    generation: AtomicU64,
}

fn enumerate() -> Arc<[DeviceInfo]> {
    let mut all = host::list(DeviceKind::Microphone);
    all.extend(host::list(DeviceKind::Speaker));
    all.extend(host_camera::list());
    all.into()
}

/// The snapshot, listed the first time it is asked for; the polling thread starts then.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("device-watch".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(POLL);
                    let listed = enumerate();
                    let snapshot = snapshot();
                    let mut devices = snapshot.devices.lock().unwrap_or_else(|p| p.into_inner());
                    if *devices != listed {
                        *devices = listed;
                        snapshot.generation.fetch_add(1, Ordering::Release);
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("device changes will not be noticed: no watch thread ({e})");
        }
        Snapshot {
            devices: Mutex::new(enumerate()),
            generation: AtomicU64::new(0),
        }
    })
}

/// The hardware devices of `kind` as last listed.
pub(super) fn list(kind: DeviceKind) -> Vec<DeviceInfo> {
    let devices = snapshot()
        .devices
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    devices.iter().filter(|d| d.kind == kind).cloned().collect()
}

/// Bumped each time the hardware list changes.
pub(super) fn generation() -> u64 {
    snapshot().generation.load(Ordering::Acquire)
}
