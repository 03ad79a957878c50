//! Reusable egui panels (the `ui` feature): a device picker with the microphone's level, the
//! in-call buttons, an incoming-call prompt, the roster and the statistics. Each is a plain
//! function over an [`egui::Ui`] that reads the plugin's components and triggers its requests
//! through [`Commands`], so a game adds any of them to its own egui layout without copying the
//! conference app (`crates/call-app`), which is built from them.
//!
//! States and end reasons are shown in words ([`describe_call`], [`describe_participant`]).

mod controls;
mod devices;
mod roster;
mod stats;

pub use bevy_egui::egui;
pub use controls::{CallView, accept_call, call_controls, incoming_call};
pub use devices::device_picker;
pub use roster::{parse_target, roster};
pub use stats::stats_panel;

use call_protocol::{CallEndReason, ParticipantState};

use crate::model::{Call, CallState};

/// A call's state in words, with the reason once it ended.
pub fn describe_call(call: &Call) -> String {
    let state = match call.state {
        CallState::None => "not started",
        CallState::EarlyMedia => "early media",
        CallState::Incoming => "incoming",
        CallState::Connecting => "connecting",
        CallState::Ringing => "ringing",
        CallState::InLobby => "waiting in the lobby",
        CallState::Connected => "connected",
        CallState::LocalHold => "on hold",
        CallState::RemoteHold => "held by the other side",
        CallState::Disconnecting => "hanging up",
        CallState::Disconnected => "ended",
    };
    match call.end_reason {
        Some(reason) => format!("{state}: {}", describe_reason(reason)),
        None => state.to_owned(),
    }
}

/// A participant's state in words, with the reason once they left.
pub fn describe_participant(state: ParticipantState, reason: Option<CallEndReason>) -> String {
    let state = match state {
        ParticipantState::Idle => "idle",
        ParticipantState::EarlyMedia => "early media",
        ParticipantState::Connecting => "connecting",
        ParticipantState::Connected => "connected",
        ParticipantState::Hold => "on hold",
        ParticipantState::InLobby => "in the lobby",
        ParticipantState::Disconnected => "left",
    };
    match reason {
        Some(reason) => format!("{state}: {}", describe_reason(reason)),
        None => state.to_owned(),
    }
}

/// An end reason in words, with its code and subcode.
pub fn describe_reason(reason: CallEndReason) -> String {
    format!(
        "{} ({}/{})",
        reason.description(),
        reason.code,
        reason.subcode
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use call_protocol::CallId;

    #[test]
    fn states_and_reasons_read_as_words() {
        let mut call = Call::new(
            CallId::new_group(),
            crate::CallDirection::Outgoing,
            CallState::Disconnected,
        );
        call.end_reason = Some(CallEndReason::NO_ANSWER);
        let text = describe_call(&call);
        assert!(
            text.starts_with("ended: ") && text.ends_with("(408/0)"),
            "{text}"
        );
        assert_eq!(
            describe_participant(ParticipantState::InLobby, None),
            "in the lobby"
        );
    }
}
