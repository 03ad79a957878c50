//! Phones dialling in: an INVITE to a number on the trunk rings the user it maps to (or joins
//! the group call), and is answered with our description when the call connects here.

use std::sync::Arc;

use call_protocol::{CallEndReason, CommunicationIdentifier};
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, StatusCode};
use rsipstack::transaction::Transaction;
use tokio::sync::{mpsc, oneshot};

use super::phone::Phone;
use super::sdp::{self, AudioLine};
use super::sip::{CALL_COMMANDS, Context};
use super::{CallCommand, DialIn, GatewayEvent};

/// The SIP status that tells a phone why the call it placed ended before it was answered.
fn status_of(reason: CallEndReason) -> StatusCode {
    match reason {
        CallEndReason::USER_NOT_FOUND => StatusCode::NotFound,
        CallEndReason::NO_ANSWER => StatusCode::TemporarilyUnavailable,
        CallEndReason::DECLINED | CallEndReason::REJECTED_LOCALLY => StatusCode::Decline,
        CallEndReason::BUSY => StatusCode::BusyHere,
        _ => StatusCode::ServiceUnavailable,
    }
}

/// Who calls: a number from the From header's user part (an E.164 number, with or without
/// its `+`), else `+0000000` (anonymous); its display name, else the number.
fn caller_of(transaction: &Transaction) -> (CommunicationIdentifier, String) {
    let from = transaction
        .original
        .from_header()
        .ok()
        .and_then(|h| h.typed().ok());
    let user = from.as_ref().and_then(|f| f.uri.user()).unwrap_or_default();
    let id = format!("4:+{}", user.trim_start_matches('+'))
        .parse()
        .unwrap_or(CommunicationIdentifier::PhoneNumber("0000000".into()));
    let name = from.and_then(|f| f.display_name).filter(|n| !n.is_empty());
    let name = name.or_else(|| id.e164()).unwrap_or_default();
    (id, name)
}

/// Answers a dial-in INVITE that is not in a dialog yet.
pub(super) async fn answer(context: Arc<Context>, mut transaction: Transaction) {
    let number = transaction
        .original
        .uri
        .user()
        .unwrap_or_default()
        .to_owned();
    let target = context.config.dial_in.get(&number).cloned();
    let offer = sdp::read(&String::from_utf8_lossy(&transaction.original.body));
    let (target, line) = match (target, offer) {
        (Some(target), Ok(line)) => (target, line),
        (None, _) => return refuse(transaction, StatusCode::NotFound).await,
        (_, Err(_)) => return refuse(transaction, StatusCode::NotAcceptableHere).await,
    };
    let (caller, display_name) = caller_of(&transaction);
    let contact = context.contact().ok();
    let (states_tx, mut states) = context.dialogs.new_dialog_state_channel();
    let dialog =
        match context
            .dialogs
            .get_or_create_server_invite(&transaction, states_tx, None, contact)
        {
            Ok(dialog) => dialog,
            Err(_) => return refuse(transaction, StatusCode::BadRequest).await,
        };
    let mut driver = dialog.clone();
    tokio::spawn(async move {
        if let Err(e) = driver.handle(&mut transaction).await {
            tracing::debug!("dial-in INVITE: {e}");
        }
    });
    let rings = matches!(target, DialIn::User(_));
    let (commands_tx, mut commands) = mpsc::channel(CALL_COMMANDS);
    let (reply, session) = oneshot::channel();
    let asked = GatewayEvent::DialIn {
        caller,
        display_name,
        target,
        commands: commands_tx,
        reply,
    };
    let session = match context.events.send(asked).await {
        Ok(()) => session
            .await
            .unwrap_or(Err(CallEndReason::PHONE_NETWORK_FAILED)),
        Err(_) => Err(CallEndReason::PHONE_NETWORK_FAILED),
    };
    let phone = match session {
        Ok(session) => Phone::new(&context, session).await,
        Err(reason) => Err(reason),
    };
    let mut phone = match phone {
        Ok(phone) => phone,
        Err(reason) => {
            let _ = dialog.reject(Some(status_of(reason)), None);
            context.dialogs.remove_dialog(&dialog.id());
            return;
        }
    };
    if rings {
        let _ = dialog.ringing(None, None);
    }
    let mut answered = false;
    let ended = loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(CallCommand::Answer) if !answered => {
                    answered = true;
                    if let Err(reason) = accept(&dialog, &mut phone, line).await {
                        let _ = dialog.bye().await;
                        break Some(reason);
                    }
                }
                Some(CallCommand::End(reason)) => {
                    match answered {
                        true => {
                            let _ = dialog.bye().await;
                        }
                        false => {
                            let _ = dialog.reject(Some(status_of(reason)), None);
                        }
                    }
                    break None;
                }
                Some(command) => phone.command(command),
                None => {
                    let _ = dialog.bye().await;
                    break None;
                }
            },
            state = states.recv() => match state {
                Some(DialogState::Terminated(_, reason)) => {
                    break Some(match reason {
                        TerminatedReason::UacCancel => CallEndReason::CANCELLED,
                        TerminatedReason::UacBye => CallEndReason::REMOTE_HANG_UP,
                        _ => CallEndReason::PHONE_NETWORK_FAILED,
                    });
                }
                Some(_) => {}
                None => break Some(CallEndReason::PHONE_NETWORK_FAILED),
            },
        }
    };
    context.dialogs.remove_dialog(&dialog.id());
    phone.end(ended).await;
}

/// Refuses an INVITE outside any dialog.
async fn refuse(mut transaction: Transaction, status: StatusCode) {
    if let Err(e) = transaction.reply(status).await {
        tracing::debug!("SIP reply: {e}");
    }
}

/// Answers with our description in the phone's law and starts the media.
async fn accept(
    dialog: &rsipstack::dialog::invite_dialog::InviteDialog,
    phone: &mut Phone,
    line: AudioLine,
) -> Result<(), CallEndReason> {
    let description = sdp::describe(phone.rtp, &[line.law], phone.session);
    let content_type = vec![Header::ContentType("application/sdp".into())];
    dialog
        .accept(Some(content_type), Some(description.into_bytes()))
        .map_err(|e| {
            tracing::warn!("phone {}: answering: {e}", phone.session);
            CallEndReason::PHONE_NETWORK_FAILED
        })?;
    phone.media_to(line).await
}
