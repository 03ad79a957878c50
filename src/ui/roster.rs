//! The roster: who is in a call, how they are, and (for organizers) remove and invite.

use bevy::prelude::*;
use bevy_egui::egui;
use call_protocol::{CommunicationIdentifier, Role};

use crate::model::{AddParticipants, RemoteParticipant, RemoveParticipant};

/// A table of `participants` (state in words, muted, speaking, role) with a remove button per
/// row and an invite field under it. Remove and invite are enabled for organizers
/// (`is_organizer`) and shown disabled otherwise; the service decides in the end, and a refusal
/// comes back as a [`crate::RequestFailed`].
pub fn roster<'a>(
    ui: &mut egui::Ui,
    commands: &mut Commands,
    call: Entity,
    participants: impl IntoIterator<Item = &'a RemoteParticipant>,
    is_organizer: bool,
) {
    egui::Grid::new(("roster", call))
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for header in ["Name", "State", "Audio", "Role", ""] {
                ui.strong(header);
            }
            ui.end_row();
            for p in participants {
                let name = if p.display_name.is_empty() {
                    p.identifier.to_string()
                } else {
                    p.display_name.clone()
                };
                ui.label(name).on_hover_text(p.identifier.to_string());
                ui.label(super::describe_participant(p.state, p.end_reason));
                ui.label(match (p.is_muted, p.is_speaking) {
                    (true, _) => "muted",
                    (false, true) => "speaking",
                    (false, false) => "",
                });
                ui.label(role_name(p.role));
                if ui
                    .add_enabled(is_organizer, egui::Button::new("Remove"))
                    .on_disabled_hover_text("organizers only")
                    .clicked()
                {
                    commands.trigger(RemoveParticipant {
                        call,
                        participant: p.identifier.clone(),
                    });
                }
                ui.end_row();
            }
        });
    ui.horizontal(|ui| {
        let id = ui.id().with(("invite", call));
        let mut text = ui.data_mut(|d| d.get_temp::<String>(id).unwrap_or_default());
        ui.add(egui::TextEdit::singleline(&mut text).hint_text("user id to invite"));
        let target = parse_target(&text);
        if ui
            .add_enabled(target.is_some(), egui::Button::new("Invite"))
            .clicked()
            && let Some(target) = target
        {
            commands.trigger(AddParticipants {
                call,
                targets: vec![target],
            });
            text.clear();
        }
        ui.data_mut(|d| d.insert_temp(id, text));
    });
}

/// A role in words.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Organizer => "organizer",
        Role::Presenter => "presenter",
        Role::Attendee => "attendee",
    }
}

/// What a typed id means: a full identifier (`8:acs:bob`, `4:+1555...`) or a bare user name.
pub fn parse_target(text: &str) -> Option<CommunicationIdentifier> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.parse()
        .ok()
        .or_else(|| CommunicationIdentifier::user(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_are_full_identifiers_or_user_names() {
        assert_eq!(parse_target("  "), None);
        assert_eq!(
            parse_target("bob"),
            CommunicationIdentifier::user("bob").ok()
        );
        assert_eq!(
            parse_target("8:acs:bob").map(|i| i.to_string()),
            Some("8:acs:bob".to_owned())
        );
    }
}
