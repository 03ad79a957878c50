//! Calls to phones: the INVITE with our description, the carrier's progress (180, 183 with
//! early media, 200, failures), and the call until either side hangs up.

use std::sync::Arc;

use call_protocol::CallEndReason;
use rsipstack::dialog::DialogId;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Response, StatusCode, Uri};
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::CallCommand;
use super::phone::Phone;
use super::sdp::{self, Law};
use super::sip::{Context, reason_of};
use crate::switchboard::{PhoneProgress, SessionId};

/// Places one phone call and plays it until either side hangs up; every way it ends is told
/// to the switchboard (except our own hang-up, which the switchboard asked for).
pub(super) async fn dial(
    context: Arc<Context>,
    session: SessionId,
    number: String,
    commands: mpsc::Receiver<CallCommand>,
) {
    let phone = match Phone::new(&context, session).await {
        Ok(phone) => phone,
        Err(reason) => {
            let event = super::GatewayEvent::Progress(session, PhoneProgress::Ended(reason));
            let _ = context.events.send(event).await;
            return;
        }
    };
    match Call::place(phone, &number) {
        Ok(call) => call.play(commands).await,
        Err((phone, reason)) => phone.end(Some(reason)).await,
    }
}

/// The dialog's answer: the final response, once it comes.
type Answer = JoinHandle<rsipstack::Result<(DialogId, Option<Response>)>>;

/// A phone call placed on the trunk.
struct Call {
    phone: Phone,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    answer: Answer,
}

impl Call {
    /// Sends the INVITE with our description.
    fn place(phone: Phone, number: &str) -> Result<Self, (Phone, CallEndReason)> {
        let context = phone.context.clone();
        let config = &context.config;
        let offer = sdp::describe(phone.rtp, &[Law::Pcmu, Law::Pcma], phone.session);
        let uri = |text: String| Uri::try_from(text.as_str()).map_err(|e| e.to_string());
        let option = (|| {
            Ok::<_, String>(InviteOption {
                caller: uri(format!("sip:{}@{}", config.caller_id, context.local))?,
                callee: uri(format!("sip:{number}@{}", config.trunk))?,
                destination: Some(SipAddr::from(config.trunk)),
                contact: context.contact()?,
                content_type: Some("application/sdp".into()),
                offer: Some(offer.into_bytes()),
                credential: config.credentials.as_ref().map(|c| Credential {
                    username: c.username.clone(),
                    password: c.password.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })();
        let (states_tx, states) = context.dialogs.new_dialog_state_channel();
        let invited = option.and_then(|option| {
            context
                .dialogs
                .do_invite_async(option, states_tx)
                .map_err(|e| e.to_string())
        });
        match invited {
            Ok((dialog, answer)) => Ok(Self {
                phone,
                dialog,
                states,
                answer,
            }),
            Err(e) => {
                tracing::warn!("phone call to {number}: {e}");
                Err((phone, CallEndReason::PHONE_NETWORK_FAILED))
            }
        }
    }

    /// Follows the call to its end, then ends the phone's part.
    async fn play(mut self, mut commands: mpsc::Receiver<CallCommand>) {
        let mut answered = false;
        let mut provisional = false;
        let ended = loop {
            tokio::select! {
                biased;
                state = self.states.recv() => match state {
                    Some(DialogState::Early(_, response)) => {
                        provisional = true;
                        if response.body.is_empty() {
                            self.phone.progress(PhoneProgress::Ringing).await;
                        } else if let Err(reason) = self.phone.media_described(&response.body).await {
                            break Some(reason);
                        } else {
                            self.phone.progress(PhoneProgress::EarlyMedia).await;
                        }
                    }
                    Some(DialogState::Terminated(_, reason)) if answered => {
                        break Some(match reason {
                            TerminatedReason::UasBye => CallEndReason::REMOTE_HANG_UP,
                            _ => CallEndReason::PHONE_NETWORK_FAILED,
                        });
                    }
                    Some(_) => {}
                    None if answered => break Some(CallEndReason::PHONE_NETWORK_FAILED),
                    None => {}
                },
                result = &mut self.answer, if !answered => match result {
                    Ok(Ok((_, Some(response)))) if response.status_code == StatusCode::OK => {
                        answered = true;
                        if let Err(reason) = self.phone.media_described(&response.body).await {
                            let _ = self.dialog.bye().await;
                            break Some(reason);
                        }
                        self.phone.progress(PhoneProgress::Answered).await;
                    }
                    Ok(Ok((_, Some(response)))) => {
                        break Some(reason_of(response.status_code.code()));
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("phone {}: {e}", self.phone.session);
                        break Some(CallEndReason::PHONE_NETWORK_FAILED);
                    }
                    Ok(Ok((_, None))) | Err(_) => break Some(CallEndReason::PHONE_NETWORK_FAILED),
                },
                command = commands.recv() => match command {
                    Some(CallCommand::End(_)) | None => {
                        // Hung up here: BYE once answered, CANCEL while it rings, and with no
                        // answer at all yet, the INVITE is given up (rsipstack cancels it if
                        // one comes).
                        match (answered, provisional) {
                            (true, _) => {
                                let _ = self.dialog.bye().await;
                            }
                            (false, true) => {
                                let _ = self.dialog.cancel().await;
                            }
                            (false, false) => self.answer.abort(),
                        }
                        break None;
                    }
                    Some(command) => self.phone.command(command),
                },
            }
        };
        self.phone.context.dialogs.remove_dialog(&self.dialog.id());
        self.phone.end(ended).await;
    }
}
