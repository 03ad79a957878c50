//! Drawing on demand: the app draws a frame when something changed (input, a fact from the
//! engine, a new picture in a shown stream, a tile still moving) and otherwise sleeps. On
//! software rendering one frame of this window costs tens of milliseconds of both cores, so
//! redrawing continuously would spend the machine on pictures that did not change.
//!
//! Winit wakes the app for input; the plugin's [`MediaWaker`] wakes it from the media thread
//! for facts and pictures; systems that animate send `RequestRedraw`; and a slow tick keeps
//! clocks and timeouts going.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::Duration;

use bevy::prelude::*;
use bevy::winit::{
    EventLoopProxy, EventLoopProxyWrapper, UpdateMode, WinitSettings, WinitUserEvent,
};
use bevy_calling::MediaWaker;
use bevy_egui::{EguiInput, EguiPreUpdateSet, egui};

use crate::screens::Screens;

/// The longest the app sleeps with nothing happening.
const IDLE: Duration = Duration::from_secs(1);
/// While the devices panel shows the microphone's level meter, it moves at 20 frames a second.
const METER: Duration = Duration::from_millis(50);

/// Draws on demand instead of continuously.
pub struct PacePlugin;

impl Plugin for PacePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(settings(IDLE))
            .add_systems(Last, pace)
            .add_systems(
                PreUpdate,
                drop_unchanged_modifiers
                    .after(EguiPreUpdateSet::ProcessInput)
                    .before(EguiPreUpdateSet::BeginPass),
            );
        // The winit plugin (added before this one) owns the event loop's proxy.
        if let Some(proxy) = app.world().get_resource::<EventLoopProxyWrapper>() {
            let waker = Waker::from(Arc::new(Redraw((**proxy).clone())));
            app.insert_resource(MediaWaker(waker));
        }
    }
}

/// Wakes winit's event loop for one more frame.
struct Redraw(EventLoopProxy<WinitUserEvent>);

impl Wake for Redraw {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Fails only once the event loop is gone, when there is nothing left to draw.
        let _ = self.0.send_event(WinitUserEvent::WakeUp);
    }
}

/// The same reactive mode with and without focus: a call in a background window still shows
/// its video.
fn settings(wait: Duration) -> WinitSettings {
    WinitSettings {
        focused_mode: UpdateMode::reactive(wait),
        unfocused_mode: UpdateMode::reactive(wait),
    }
}

/// Ticks faster while a level meter is on screen.
fn pace(screens: Res<Screens>, mut winit: ResMut<WinitSettings>) {
    let wait = if screens.show_devices { METER } else { IDLE };
    let now = match winit.focused_mode {
        UpdateMode::Reactive { wait, .. } => Some(wait),
        UpdateMode::Continuous => None,
    };
    if now != Some(wait) {
        *winit = settings(wait);
    }
}

/// bevy_egui 0.42 reports the modifier keys to egui every frame, changed or not; egui counts
/// any report as input and asks for another frame at once, so the app would never sleep. The
/// report is kept only when the keys changed (egui keeps the last state it was told).
fn drop_unchanged_modifiers(
    mut inputs: Query<(Entity, &mut EguiInput)>,
    mut last: Local<HashMap<Entity, egui::Modifiers>>,
) {
    for (entity, mut input) in &mut inputs {
        input.0.events.retain(|event| match event {
            egui::Event::ModifiersChanged(keys) => last.insert(entity, *keys) != Some(*keys),
            _ => true,
        });
    }
}
