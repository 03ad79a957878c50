//! What the screens draw over the stage: each tile's name, muted badge and (without video)
//! initials, and the incoming-call prompt.

use bevy::prelude::*;
use bevy_calling::prelude::*;
use bevy_calling::ui::{self, egui};

use super::Seen;

/// A prompt for each call ringing for `agent`: accept, accept with video, or decline. Returns
/// where the first was drawn.
pub(super) fn incoming_calls(
    ctx: &egui::Context,
    commands: &mut Commands,
    agent: Entity,
    state: &CallAgent,
    world: &Seen,
) -> Option<egui::Rect> {
    let mut drawn = None;
    for (call, c, of) in &world.incoming {
        if of.0 != agent || c.state != CallState::Incoming {
            continue;
        }
        let caller = world
            .calls
            .get(call)
            .ok()
            .and_then(|(_, p, ..)| p?.entities().first().copied())
            .and_then(|p| world.callers.get(p).ok())
            .map_or_else(|| "Someone".to_owned(), |p| p.display_name.clone());
        let prompt = egui::Window::new("Incoming call")
            .id(egui::Id::new(("incoming", call)))
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .collapsible(false)
            .show(ctx, |ui| {
                ui::incoming_call(ui, commands, call, &caller, state.camera());
            });
        drawn = drawn.or(prompt.map(|p| p.response.rect));
    }
    drawn
}

/// Names under the tiles, initials on tiles without video, a badge on muted ones.
pub(super) fn overlays(ctx: &egui::Context, world: &Seen) {
    let scale = ctx.pixels_per_point();
    for (tile, on_screen) in &world.tiles {
        if !on_screen.visible {
            continue;
        }
        let Ok(p) = world.participants.get(tile.participant) else {
            continue;
        };
        let point = |v: Vec2| egui::pos2(v.x / scale, v.y / scale);
        let bottom = point((on_screen.corners[2] + on_screen.corners[3]) / 2.0);
        let mut label = p.display_name.clone();
        if p.is_muted {
            label.push_str("  [muted]");
        }
        egui::Area::new(egui::Id::new(("name", tile.participant)))
            .fixed_pos(bottom + egui::vec2(-60.0, 4.0))
            .interactable(false)
            .show(ctx, |ui| {
                let text = egui::RichText::new(label)
                    .strong()
                    .color(egui::Color32::WHITE);
                ui.add(egui::Label::new(text).extend());
            });
        if !tile.has_video {
            let centre = point(on_screen.centre());
            let size = (on_screen.width() / scale / 5.0).clamp(12.0, 64.0);
            ctx.layer_painter(egui::LayerId::new(
                egui::Order::Background,
                egui::Id::new("initials"),
            ))
            .text(
                centre,
                egui::Align2::CENTER_CENTER,
                initials(&p.display_name),
                egui::FontId::proportional(size),
                egui::Color32::WHITE,
            );
        }
    }
}

/// "Ada Lovelace" → "AL".
fn initials(name: &str) -> String {
    let letters: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .collect::<String>()
        .to_uppercase();
    if letters.is_empty() {
        "?".into()
    } else {
        letters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_take_the_first_letters_of_two_words() {
        assert_eq!(initials("Ada Lovelace"), "AL");
        assert_eq!(initials("bot 3"), "B3");
        assert_eq!(initials(""), "?");
    }
}
