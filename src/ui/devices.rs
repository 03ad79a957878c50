//! The device picker: microphone, speaker and camera, with the microphone's level.

use bevy::prelude::*;
use bevy_egui::egui;
use call_media::device::{DeviceId, DeviceKind};

use crate::model::{CallAgent, Device, LevelMeter, SelectDevice};

/// Three pickers (microphone, speaker, camera) for `agent`, listing `devices` (the [`Device`]
/// entities), with the agent's [`LevelMeter`] as a bar under the microphone. Choosing one
/// triggers [`SelectDevice`]; "none" is offered too.
pub fn device_picker<'a>(
    ui: &mut egui::Ui,
    commands: &mut Commands,
    agent: Entity,
    state: &CallAgent,
    devices: impl IntoIterator<Item = &'a Device> + Clone,
    meter: Option<&LevelMeter>,
) {
    egui::Grid::new(("device-picker", agent))
        .num_columns(2)
        .show(ui, |ui| {
            for (kind, label) in [
                (DeviceKind::Microphone, "Microphone"),
                (DeviceKind::Speaker, "Speaker"),
                (DeviceKind::Camera, "Camera"),
            ] {
                ui.label(label);
                let current = state.device(kind);
                let of_kind: Vec<&Device> = devices
                    .clone()
                    .into_iter()
                    .filter(|d| d.kind == kind)
                    .collect();
                if let Some(choice) = pick(ui, (agent, label), current, &of_kind) {
                    commands.trigger(SelectDevice {
                        agent,
                        kind,
                        device: choice,
                    });
                }
                ui.end_row();
                if kind == DeviceKind::Microphone {
                    ui.label("");
                    let rms = meter.map_or(0.0, |m| m.rms);
                    // A bar over -60..0 dBFS, which is how loudness is heard.
                    let db = 20.0 * rms.max(1e-6).log10();
                    let fill = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
                    let speaking = meter.is_some_and(LevelMeter::is_speaking);
                    ui.add(
                        egui::ProgressBar::new(fill)
                            .desired_width(160.0)
                            .fill(if speaking {
                                egui::Color32::from_rgb(60, 170, 90)
                            } else {
                                egui::Color32::DARK_GRAY
                            })
                            .text(format!("{db:.0} dBFS")),
                    );
                    ui.end_row();
                }
            }
        });
}

/// One combo box; returns the new choice when the user made one (`Some(None)`: none).
fn pick(
    ui: &mut egui::Ui,
    id: impl std::hash::Hash + std::fmt::Debug,
    current: Option<&DeviceId>,
    devices: &[&Device],
) -> Option<Option<DeviceId>> {
    let name = |id: &DeviceId| {
        devices
            .iter()
            .find(|d| &d.id == id)
            .map_or_else(|| id.0.clone(), |d| d.name.clone())
    };
    let mut choice = None;
    egui::ComboBox::from_id_salt(id)
        .width(220.0)
        .selected_text(current.map_or_else(|| "none".to_owned(), name))
        .show_ui(ui, |ui| {
            if ui.selectable_label(current.is_none(), "none").clicked() {
                choice = Some(None);
            }
            for device in devices {
                let selected = current == Some(&device.id);
                if ui.selectable_label(selected, &device.name).clicked() && !selected {
                    choice = Some(Some(device.id.clone()));
                }
            }
        });
    choice
}
