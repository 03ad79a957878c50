//! Devices as entities: every microphone, speaker and camera the [`crate::Devices`] manager
//! lists, kept current as devices come and go, with the requests that choose them and the
//! level meters that show them working.

use bevy::prelude::*;
use call_media::audio::VoiceProcessing;
use call_media::device::{DeviceId, DeviceInfo, DeviceKind};

/// A microphone, speaker or camera, hardware or synthetic. Spawned when the manager lists it,
/// despawned when it goes away ([`DeviceAdded`], [`DeviceRemoved`]).
#[derive(Component, Reflect, Debug, Clone, PartialEq, Eq)]
// Foreign (Bevy-free crate) fields are not reflected: they have no Default to rebuild from.
#[reflect(from_reflect = false)]
pub struct Device {
    /// Its id, for [`SelectDevice`].
    #[reflect(ignore)]
    pub id: DeviceId,
    /// A name for people.
    pub name: String,
    /// Microphone, speaker, camera or screen source.
    #[reflect(ignore)]
    pub kind: DeviceKind,
    /// For a window: the application it belongs to.
    pub application: Option<String>,
    /// The one of its kind used when nothing else is chosen, and the fallback when the chosen
    /// one goes away.
    pub is_default: bool,
    /// A synthetic device (file, tone, pattern, recorder) rather than hardware.
    pub is_synthetic: bool,
}

impl From<DeviceInfo> for Device {
    fn from(info: DeviceInfo) -> Self {
        Self {
            id: info.id,
            name: info.name,
            kind: info.kind,
            application: info.application,
            is_default: info.is_default,
            is_synthetic: info.is_synthetic,
        }
    }
}

/// Request: use this microphone, speaker or camera for an agent, before or during a call
/// (`None`: none of that kind). A switch during a call keeps the call and its streams, and
/// mute, hold and video state; a camera switch applies to every call sending camera video.
/// Answered with [`DeviceSwitched`], or [`crate::RequestFailed`] for a device that is not
/// listed or not of that kind.
#[derive(Event, Clone, Debug)]
pub struct SelectDevice {
    /// The [`crate::CallAgent`] entity.
    pub agent: Entity,
    /// Which kind of device to choose.
    pub kind: DeviceKind,
    /// The device, or none.
    pub device: Option<DeviceId>,
}

/// A live level meter. Put it on a microphone [`Device`] entity to open that microphone and see
/// its level before any call (a device test); the plugin adds one to every
/// [`crate::CallAgent`], showing the agent's microphone while it is open in a call. Updated
/// every frame.
#[derive(Component, Reflect, Debug, Clone, Copy, Default, PartialEq)]
pub struct LevelMeter {
    /// RMS of the latest 20 ms, 0 (silence) to 1 (full scale); 0 while nothing is captured.
    pub rms: f32,
}

impl LevelMeter {
    /// About -40 dBFS: above this, someone is speaking.
    pub const SPEAKING_RMS: f32 = 0.01;

    /// Whether the level is that of someone speaking (for a "you are speaking" bar).
    pub fn is_speaking(&self) -> bool {
        self.rms >= Self::SPEAKING_RMS
    }
}

/// Fact: a device appeared (plugged in, or added to the manager).
#[derive(Message, Clone, Debug)]
pub struct DeviceAdded {
    /// The new [`Device`] entity.
    pub device: Entity,
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
}

/// Fact: a device went away (unplugged, or removed from the manager); its entity is despawned.
#[derive(Message, Clone, Debug)]
pub struct DeviceRemoved {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
}

/// Why an agent's device changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Reflect)]
pub enum DeviceSwitchReason {
    /// The app asked ([`SelectDevice`]).
    Requested,
    /// The device in use went away: the agent fell back to the default one, or to none when no
    /// device of that kind is left.
    Unplugged,
}

/// Fact: an agent's microphone, speaker or camera changed.
#[derive(Message, Clone, Debug)]
pub struct DeviceSwitched {
    /// The [`crate::CallAgent`] entity.
    pub agent: Entity,
    /// Which kind.
    pub kind: DeviceKind,
    /// The device used before.
    pub from: Option<DeviceId>,
    /// The device used now; `None` means the agent has none of this kind ("no microphone").
    pub to: Option<DeviceId>,
    /// Why.
    pub reason: DeviceSwitchReason,
}

/// Request: turn an agent's echo cancellation, noise suppression and automatic gain on or off,
/// or back to automatic (on for hardware microphones), at once, in calls too.
#[derive(Event, Clone, Copy, Debug)]
pub struct SetVoiceProcessing {
    /// The [`crate::CallAgent`] entity.
    pub agent: Entity,
    /// The new mode.
    pub mode: VoiceProcessing,
}
