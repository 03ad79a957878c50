//! The in-call buttons and the incoming-call prompt.

use bevy::prelude::*;
use bevy_egui::egui;
use call_media::device::DeviceId;

use crate::model::{
    AcceptCall, Call, CallState, Device, HangUp, HangUpForEveryone, Hold, Mute, RejectCall, Resume,
    SelectDevice, StartScreenShare, StartVideo, StopScreenShare, StopVideo, Unmute,
};
use call_media::device::DeviceKind;

/// What the in-call buttons need to know about one call.
#[derive(Clone, Copy, Debug)]
pub struct CallView<'a> {
    /// The [`Call`] entity.
    pub entity: Entity,
    /// The call.
    pub call: &'a Call,
    /// Its [`crate::CallAgent`] entity.
    pub agent: Entity,
    /// The camera the agent uses, if any.
    pub camera: Option<&'a DeviceId>,
    /// Whether this side's camera is on in this call ([`crate::LocalVideoStream`] present).
    pub video_on: bool,
    /// Whether this side shares its screen in this call ([`crate::LocalScreenShare`] present).
    pub sharing: bool,
    /// Every camera listed, for switching.
    pub cameras: &'a [DeviceId],
    /// Screen sources to share (the whole screen, application windows): chosen from a menu
    /// before or during a share. With none listed the menu is shown disabled.
    pub screen_sources: &'a [Device],
    /// Whether this user may end the call for everyone (organizers).
    pub is_organizer: bool,
}

/// The in-call buttons: mute, video on/off, camera switch, hold/resume, share screen, hang up
/// and hang up for everyone. Buttons that do not apply now are drawn disabled, not hidden.
pub fn call_controls(ui: &mut egui::Ui, commands: &mut Commands, view: CallView) {
    let call = view.entity;
    let live = view.call.state.is_live();
    let held = view.call.state == CallState::LocalHold;
    ui.horizontal_wrapped(|ui| {
        let mute_label = if view.call.is_muted { "Unmute" } else { "Mute" };
        if ui
            .add_enabled(live, egui::Button::new(mute_label))
            .clicked()
        {
            if view.call.is_muted {
                commands.trigger(Unmute { call });
            } else {
                commands.trigger(Mute { call });
            }
        }
        let video_label = if view.video_on {
            "Video off"
        } else {
            "Video on"
        };
        let can_video = live && (view.video_on || view.camera.is_some());
        if ui
            .add_enabled(can_video, egui::Button::new(video_label))
            .on_disabled_hover_text("no camera chosen")
            .clicked()
        {
            match (view.video_on, view.camera) {
                (true, _) => commands.trigger(StopVideo { call }),
                (false, Some(camera)) => commands.trigger(StartVideo {
                    call,
                    camera: camera.clone(),
                }),
                (false, None) => {}
            }
        }
        let next_camera = next_after(view.cameras, view.camera);
        if ui
            .add_enabled(next_camera.is_some(), egui::Button::new("Switch camera"))
            .on_disabled_hover_text("only one camera")
            .clicked()
            && let Some(next) = next_camera
        {
            commands.trigger(SelectDevice {
                agent: view.agent,
                kind: DeviceKind::Camera,
                device: Some(next.clone()),
            });
        }
        let hold_label = if held { "Resume" } else { "Hold" };
        if ui
            .add_enabled(live, egui::Button::new(hold_label))
            .clicked()
        {
            if held {
                commands.trigger(Resume { call });
            } else {
                commands.trigger(Hold { call });
            }
        }
        share_menu(ui, commands, &view, live);
        let hang_up = egui::Button::new("Hang up").fill(egui::Color32::from_rgb(170, 40, 40));
        let active = view.call.state != CallState::Disconnected;
        if ui.add_enabled(active, hang_up).clicked() {
            commands.trigger(HangUp { call });
        }
        if ui
            .add_enabled(
                live && view.is_organizer,
                egui::Button::new("End for everyone"),
            )
            .on_disabled_hover_text("organizers only")
            .clicked()
        {
            commands.trigger(HangUpForEveryone { call });
        }
    });
}

/// "Share screen" (or "Share another" while sharing) opens the list of screen sources; a
/// source chosen starts the share, or switches it; "Stop sharing" ends it.
fn share_menu(ui: &mut egui::Ui, commands: &mut Commands, view: &CallView, live: bool) {
    let call = view.entity;
    let label = if view.sharing {
        "Share another"
    } else {
        "Share screen"
    };
    let can_share = live && !view.screen_sources.is_empty();
    ui.add_enabled_ui(can_share, |ui| {
        // A label that does not fit wraps whole, like the buttons', not letter by letter.
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Extend);
        ui.menu_button(label, |ui| {
            for source in view.screen_sources {
                let name = match &source.application {
                    Some(app) => format!("{} — {app}", source.name),
                    None => source.name.clone(),
                };
                if ui.button(name).clicked() {
                    let source = source.id.clone();
                    if view.sharing {
                        commands.trigger(SelectDevice {
                            agent: view.agent,
                            kind: DeviceKind::Screen,
                            device: Some(source),
                        });
                    } else {
                        commands.trigger(StartScreenShare { call, source });
                    }
                }
            }
        })
        .response
        .on_disabled_hover_text("no screen sources listed");
    });
    if ui
        .add_enabled(view.sharing, egui::Button::new("Stop sharing"))
        .clicked()
    {
        commands.trigger(StopScreenShare { call });
    }
}

/// The camera after `current` in `cameras`, wrapping; `None` with fewer than two.
fn next_after<'a>(cameras: &'a [DeviceId], current: Option<&DeviceId>) -> Option<&'a DeviceId> {
    if cameras.len() < 2 {
        return None;
    }
    let at = current
        .and_then(|c| cameras.iter().position(|d| d == c))
        .map_or(0, |k| k + 1);
    cameras.get(at % cameras.len())
}

/// Accepts an incoming `call`, sending video from `camera` when one is given: what the prompt's
/// "Accept" and "Accept with video" buttons do.
pub fn accept_call(commands: &mut Commands, call: Entity, camera: Option<DeviceId>) {
    commands.trigger(AcceptCall { call });
    if let Some(camera) = camera {
        commands.trigger(StartVideo { call, camera });
    }
}

/// The incoming-call prompt: who calls, accept with audio, accept with video (when a camera is
/// chosen), decline.
pub fn incoming_call(
    ui: &mut egui::Ui,
    commands: &mut Commands,
    call: Entity,
    caller: &str,
    camera: Option<&DeviceId>,
) {
    ui.label(egui::RichText::new(format!("{caller} is calling")).heading());
    ui.horizontal(|ui| {
        if ui.button("Accept").clicked() {
            accept_call(commands, call, None);
        }
        if ui
            .add_enabled(camera.is_some(), egui::Button::new("Accept with video"))
            .on_disabled_hover_text("no camera chosen")
            .clicked()
        {
            accept_call(commands, call, camera.cloned());
        }
        if ui.button("Decline").clicked() {
            commands.trigger(RejectCall { call });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_switch_cycles_through_the_list() {
        let ids: Vec<DeviceId> = ["a", "b", "c"].map(|s| DeviceId(s.into())).to_vec();
        assert_eq!(next_after(&ids, Some(&ids[0])), Some(&ids[1]));
        assert_eq!(next_after(&ids, Some(&ids[2])), Some(&ids[0]));
        assert_eq!(next_after(&ids, None), Some(&ids[0]));
        assert_eq!(next_after(&ids[..1], Some(&ids[0])), None);
    }
}
