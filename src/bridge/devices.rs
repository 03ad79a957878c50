//! Devices in the ECS: [`Device`] entities that follow the manager's list, the agents' choices
//! ([`SelectDevice`]), falling back to the default when the device in use goes away, and the
//! [`LevelMeter`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bevy::prelude::*;
use call_media::AgentCommand;
use call_media::audio::rms;
use call_media::device::{DeviceError, DeviceId, DeviceInfo, DeviceKind, DeviceManager};

use super::{AgentLink, Devices};
use crate::model::{
    CallAgent, CallOf, Device, DeviceAdded, DeviceRemoved, DeviceSwitchReason, DeviceSwitched,
    LevelMeter, LocalVideoStream, RequestError, RequestFailed, SelectDevice, SetVoiceProcessing,
};

const KINDS: [DeviceKind; 4] = [
    DeviceKind::Microphone,
    DeviceKind::Speaker,
    DeviceKind::Camera,
    DeviceKind::Screen,
];

/// Makes the [`Device`] entities match the manager's list whenever it changed, and moves every
/// agent whose device went away to the default one (or to none).
#[allow(clippy::too_many_arguments)] // One system: the list, the entities, the agents, the facts.
pub(crate) fn sync_devices(
    devices: Res<Devices>,
    mut seen: Local<Option<u64>>,
    mut existing: Query<(Entity, &mut Device)>,
    mut agents: Query<(Entity, &mut CallAgent, Option<&AgentLink>)>,
    cameras: Query<(&LocalVideoStream, &CallOf)>,
    mut commands: Commands,
    mut added: MessageWriter<DeviceAdded>,
    mut removed: MessageWriter<DeviceRemoved>,
    mut switched: MessageWriter<DeviceSwitched>,
) {
    let generation = devices.generation();
    if *seen == Some(generation) {
        return;
    }
    *seen = Some(generation);
    let listed: Vec<DeviceInfo> = KINDS.iter().flat_map(|&k| devices.list(k)).collect();
    let mut known = Vec::new();
    for (entity, mut device) in &mut existing {
        match listed.iter().find(|d| d.id == device.id) {
            Some(info) => {
                known.push(info.id.clone());
                let current = Device::from(info.clone());
                if *device != current {
                    *device = current;
                }
            }
            None => {
                commands.entity(entity).despawn();
                removed.write(DeviceRemoved {
                    id: device.id.clone(),
                    kind: device.kind,
                });
            }
        }
    }
    for info in listed.iter().filter(|d| !known.contains(&d.id)) {
        let device = commands.spawn(Device::from(info.clone())).id();
        added.write(DeviceAdded {
            device,
            id: info.id.clone(),
            kind: info.kind,
        });
    }
    let is_listed = |id: &DeviceId| listed.iter().any(|d| &d.id == id);
    for (agent, mut a, link) in &mut agents {
        // A screen source that goes away ends its share (the engine says why) instead of
        // sharing something else in its place.
        for kind in KINDS.into_iter().filter(|&k| k != DeviceKind::Screen) {
            // A camera is in use when chosen, or when a call of this agent sends from it.
            let in_use = a.device(kind).cloned().or_else(|| {
                (kind == DeviceKind::Camera)
                    .then(|| {
                        cameras
                            .iter()
                            .find(|(_, of)| of.0 == agent)
                            .map(|(v, _)| v.camera.clone())
                    })
                    .flatten()
            });
            let Some(gone) = in_use.filter(|id| !is_listed(id)) else {
                continue;
            };
            let to = listed
                .iter()
                .find(|d| d.kind == kind && d.is_default)
                .map(|d| d.id.clone());
            if let Some(link) = link {
                // An engine that cannot take it is stopping; its devices close with it.
                let _ = link.0.send(AgentCommand::SetDevice {
                    kind,
                    device: to.clone(),
                });
            }
            a.set_device(kind, to.clone());
            switched.write(DeviceSwitched {
                agent,
                kind,
                from: Some(gone),
                to,
                reason: DeviceSwitchReason::Unplugged,
            });
        }
    }
}

/// Applies a [`SelectDevice`]: checks the device is listed with that kind, then switches.
pub(crate) fn select_device(
    request: On<SelectDevice>,
    devices: Res<Devices>,
    mut agents: Query<(&mut CallAgent, Option<&AgentLink>)>,
    mut switched: MessageWriter<DeviceSwitched>,
    mut failed: MessageWriter<RequestFailed>,
) {
    let SelectDevice {
        agent,
        kind,
        device,
    } = request.event().clone();
    let Ok((mut a, link)) = agents.get_mut(agent) else {
        return;
    };
    let checked = match &device {
        Some(id) => check(&devices, id, kind),
        None => Ok(()),
    };
    let sent = checked.map_err(RequestError::from).and_then(|()| {
        let link = link.ok_or(RequestError::NoEngine)?;
        let command = AgentCommand::SetDevice {
            kind,
            device: device.clone(),
        };
        Ok(link.0.send(command)?)
    });
    if let Err(error) = sent {
        failed.write(RequestFailed { agent, error });
        return;
    }
    let from = a.device(kind).cloned();
    a.set_device(kind, device.clone());
    switched.write(DeviceSwitched {
        agent,
        kind,
        from,
        to: device,
        reason: DeviceSwitchReason::Requested,
    });
}

/// Applies a [`SetVoiceProcessing`].
pub(crate) fn set_voice_processing(
    request: On<SetVoiceProcessing>,
    mut agents: Query<(&mut CallAgent, Option<&AgentLink>)>,
    mut failed: MessageWriter<RequestFailed>,
) {
    let SetVoiceProcessing { agent, mode } = *request.event();
    let Ok((mut a, link)) = agents.get_mut(agent) else {
        return;
    };
    let sent = link
        .ok_or(RequestError::NoEngine)
        .and_then(|link| Ok(link.0.send(AgentCommand::SetVoiceProcessing(mode))?));
    match sent {
        Ok(()) => a.config.voice_processing = mode,
        Err(error) => {
            failed.write(RequestFailed { agent, error });
        }
    }
}

/// Whether `id` is a listed device of `kind`.
fn check(devices: &DeviceManager, id: &DeviceId, kind: DeviceKind) -> Result<(), DeviceError> {
    if devices.list(kind).iter().any(|d| &d.id == id) {
        return Ok(());
    }
    let elsewhere = KINDS
        .iter()
        .any(|&k| k != kind && devices.list(k).iter().any(|d| &d.id == id));
    Err(match elsewhere {
        true => DeviceError::WrongKind {
            id: id.clone(),
            wanted: kind,
        },
        false => DeviceError::NotFound(id.clone()),
    })
}

/// A microphone opened for a [`LevelMeter`] on its [`Device`] entity. Dropping it (the meter is
/// removed, or the device despawned) stops the meter's thread, which closes the microphone.
#[derive(Component)]
pub(crate) struct MeterLink {
    level: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl Drop for MeterLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Opens the microphone of a [`Device`] that gets a [`LevelMeter`], on a thread of its own
/// (opening hardware blocks), which measures every frame until the meter goes.
pub(crate) fn start_meter(
    added: On<Add, LevelMeter>,
    devices: Query<&Device>,
    manager: Res<Devices>,
    mut commands: Commands,
) {
    let Ok(device) = devices.get(added.entity) else {
        return;
    };
    if device.kind != DeviceKind::Microphone {
        return;
    }
    let link = MeterLink {
        level: Arc::default(),
        stop: Arc::default(),
    };
    let (level, stop) = (link.level.clone(), link.stop.clone());
    let (manager, id) = (manager.0.clone(), device.id.clone());
    let spawned = std::thread::Builder::new()
        .name("level-meter".into())
        .spawn(move || {
            let mut microphone = match manager.open_microphone(&id) {
                Ok(m) => m,
                Err(e) => {
                    warn!("level meter: {e}");
                    return;
                }
            };
            while !stop.load(Ordering::Relaxed) {
                let Some(frame) = microphone.frames.blocking_recv() else {
                    break;
                };
                level.store(rms(&frame.samples).to_bits(), Ordering::Relaxed);
            }
        });
    match spawned {
        Ok(_) => {
            commands.entity(added.entity).insert(link);
        }
        Err(e) => warn!("level meter: no thread ({e})"),
    }
}

/// Stops the meter of a device whose [`LevelMeter`] is removed.
pub(crate) fn stop_meter(removed: On<Remove, LevelMeter>, mut commands: Commands) {
    if let Ok(mut entity) = commands.get_entity(removed.entity) {
        entity.try_remove::<MeterLink>();
    }
}

/// Copies every meter's level into its [`LevelMeter`]: a device's own, an agent's from its
/// engine.
pub(crate) fn update_levels(
    mut devices: Query<(&MeterLink, &mut LevelMeter)>,
    mut agents: Query<(&AgentLink, &mut LevelMeter), Without<MeterLink>>,
) {
    for (link, mut meter) in &mut devices {
        let rms = f32::from_bits(link.level.load(Ordering::Relaxed));
        meter.set_if_neq(LevelMeter { rms });
    }
    for (link, mut meter) in &mut agents {
        let rms = link.0.microphone_level();
        meter.set_if_neq(LevelMeter { rms });
    }
}
