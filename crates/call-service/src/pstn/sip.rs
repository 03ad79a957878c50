//! The gateway's SIP side, on rsipstack: one UDP endpoint toward the trunk, a task per phone
//! call, and the loop that takes signaling's commands and the trunk's new requests.
//!
//! rsipstack (MIT, maintained, tokio) parses SIP, runs the RFC 3261 transactions and keeps the
//! dialogs, digest authentication included; it logs and drops datagrams that do not parse, so
//! bad SIP never stops the gateway. Requests inside a dialog (the phone's BYE) reach us as new
//! transactions and are handed to their dialog here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use call_protocol::{CallEndReason, ServerMessage};
use rsipstack::EndpointBuilder;
use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{Header, Method, Response, StatusCode, Uri};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::{Endpoint, Transaction, TransactionReceiver};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, TransportLayer};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::leg::{self, Leg};
use super::sdp::{self, Law};
use super::{GatewayCommand, PstnConfig};
use crate::sfu::MediaCommand;
use crate::switchboard::{PhoneProgress, SessionId};

/// How long a transaction waits for the other side (RFC 3261's 64·T1): short enough that a
/// trunk that never answers is given up on while the caller still waits.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(16);

/// What the gateway's tasks share.
struct Context {
    config: PstnConfig,
    dialogs: Arc<DialogLayer>,
    /// Our SIP address, for From and Contact.
    local: SocketAddr,
    /// The address media legs bind and advertise.
    media_ip: IpAddr,
    media: mpsc::Sender<MediaCommand>,
    progress: mpsc::Sender<(SessionId, PhoneProgress)>,
}

/// The SIP gateway: bound, not yet running ([`Gateway::run`]).
pub struct Gateway {
    context: Arc<Context>,
    endpoint: Endpoint,
    incoming: TransactionReceiver,
    cancel: CancellationToken,
}

impl Gateway {
    /// Binds SIP on `ip` (at the configured port) and readies the endpoint. Media legs bind
    /// on `ip` and are advertised there too. Progress of phone calls goes to `progress`.
    pub async fn bind(
        config: PstnConfig,
        ip: IpAddr,
        media: mpsc::Sender<MediaCommand>,
        progress: mpsc::Sender<(SessionId, PhoneProgress)>,
    ) -> Result<Self, String> {
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.child_token());
        let bind = SocketAddr::new(ip, config.sip_port);
        let udp = UdpConnection::create_connection(bind, None, Some(cancel.child_token()))
            .await
            .map_err(|e| format!("SIP on {bind}: {e}"))?;
        let local = udp
            .get_addr()
            .get_socketaddr()
            .map_err(|e| format!("SIP on {bind}: {e}"))?;
        transport.add_transport(udp.into());
        let option = EndpointOption {
            t1x64: TRANSACTION_TIMEOUT,
            ..Default::default()
        };
        let endpoint = EndpointBuilder::new()
            .with_cancel_token(cancel.child_token())
            .with_transport_layer(transport)
            .with_user_agent("bevy_calling")
            .with_option(option)
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| format!("SIP endpoint: {e}"))?;
        let dialogs = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let context = Arc::new(Context {
            config,
            dialogs,
            local,
            media_ip: ip,
            media,
            progress,
        });
        Ok(Self {
            context,
            endpoint,
            incoming,
            cancel,
        })
    }

    /// Where the gateway takes SIP.
    pub fn local_addr(&self) -> SocketAddr {
        self.context.local
    }

    /// Serves the trunk and signaling's commands until the command channel closes.
    pub async fn run(mut self, mut commands: mpsc::Receiver<GatewayCommand>) {
        let inner = self.endpoint.inner.clone();
        let serving = tokio::spawn(async move {
            if let Err(e) = inner.serve().await {
                tracing::error!("the SIP endpoint stopped: {e}");
            }
        });
        let mut calls: HashMap<SessionId, oneshot::Sender<()>> = HashMap::new();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(GatewayCommand::Dial { session, number, .. }) => {
                        calls.retain(|_, hangup| !hangup.is_closed());
                        let (hangup, hung_up) = oneshot::channel();
                        calls.insert(session, hangup);
                        tokio::spawn(dial(self.context.clone(), session, number, hung_up));
                    }
                    Some(GatewayCommand::Message { session, message }) => {
                        // The phone's call ended here: it is hung up (dropping the sender).
                        if let ServerMessage::CallEnded { .. } = message {
                            calls.remove(&session);
                        }
                    }
                    None => break,
                },
                Some(transaction) = self.incoming.recv() => {
                    tokio::spawn(on_request(self.context.clone(), transaction));
                }
            }
        }
        self.endpoint.shutdown();
        self.cancel.cancel();
        serving.abort();
    }
}

/// A new request from the trunk: one of a dialog's (the phone's BYE) goes to it; anything
/// else is answered so the trunk never waits.
async fn on_request(context: Arc<Context>, mut transaction: Transaction) {
    if let Some(mut dialog) = context.dialogs.match_dialog(&transaction) {
        if let Err(e) = dialog.handle(&mut transaction).await {
            tracing::debug!("SIP request in a dialog: {e}");
        }
        return;
    }
    let status = match transaction.original.method {
        Method::Options => StatusCode::OK,
        // Numbers dialled in are not routed yet.
        Method::Invite => StatusCode::NotFound,
        Method::Bye | Method::Info | Method::Update | Method::PRack | Method::Notify => {
            StatusCode::CallTransactionDoesNotExist
        }
        _ => StatusCode::MethodNotAllowed,
    };
    let allow = Header::Allow("INVITE, ACK, CANCEL, BYE, OPTIONS".into());
    if let Err(e) = transaction.reply_with(status, vec![allow], None).await {
        tracing::debug!("SIP reply: {e}");
    }
}

/// The end reason for a SIP final response that is not a 200.
fn reason_of(code: u16) -> CallEndReason {
    match code {
        486 | 600 => CallEndReason::BUSY,
        404 | 484 | 604 => CallEndReason::NUMBER_NOT_FOUND,
        408 => CallEndReason::NO_ANSWER,
        480 => CallEndReason::PHONE_UNAVAILABLE,
        487 => CallEndReason::CANCELLED,
        603 => CallEndReason::DECLINED,
        code => CallEndReason::new(code, 0),
    }
}

/// Places one phone call and plays it until either side hangs up; every way it ends is told
/// to the switchboard (except our own hang-up, which the switchboard asked for).
async fn dial(
    context: Arc<Context>,
    session: SessionId,
    number: String,
    hung_up: oneshot::Receiver<()>,
) {
    let ended = match Call::place(&context, session, &number).await {
        Ok(call) => call.play(hung_up).await,
        Err(reason) => Some(reason),
    };
    if let Some(reason) = ended {
        let _ = context
            .progress
            .send((session, PhoneProgress::Ended(reason)))
            .await;
    }
    let _ = context
        .media
        .send(MediaCommand::RemovePeer { session })
        .await;
}

/// A phone call placed on the trunk.
struct Call {
    context: Arc<Context>,
    session: SessionId,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    answered:
        tokio::task::JoinHandle<rsipstack::Result<(rsipstack::dialog::DialogId, Option<Response>)>>,
    /// The media socket, until the leg takes it.
    socket: Option<UdpSocket>,
    leg: Option<Leg>,
}

impl Call {
    /// Sends the INVITE with our description.
    async fn place(
        context: &Arc<Context>,
        session: SessionId,
        number: &str,
    ) -> Result<Self, CallEndReason> {
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!("phone call to {number}: {what}: {e}");
            CallEndReason::PHONE_NETWORK_FAILED
        };
        let socket = UdpSocket::bind((context.media_ip, 0))
            .await
            .map_err(|e| failed("media socket", &e))?;
        let rtp = socket
            .local_addr()
            .map_err(|e| failed("media socket", &e))?;
        let offer = sdp::describe(rtp, &[Law::Pcmu, Law::Pcma], session);
        let config = &context.config;
        let uri = |text: String| Uri::try_from(text.as_str()).map_err(|e| failed("SIP URI", &e));
        let option = InviteOption {
            caller: uri(format!("sip:{}@{}", config.caller_id, context.local))?,
            callee: uri(format!("sip:{number}@{}", config.trunk))?,
            destination: Some(SipAddr::from(config.trunk)),
            contact: context
                .dialogs
                .build_local_contact(Some("gateway".into()), None)
                .map_err(|e| failed("contact", &e))?,
            content_type: Some("application/sdp".into()),
            offer: Some(offer.into_bytes()),
            credential: config.credentials.as_ref().map(|c| Credential {
                username: c.username.clone(),
                password: c.password.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (states_tx, states) = context.dialogs.new_dialog_state_channel();
        let (dialog, answered) = context
            .dialogs
            .do_invite_async(option, states_tx)
            .map_err(|e| failed("INVITE", &e))?;
        Ok(Self {
            context: context.clone(),
            session,
            dialog,
            states,
            answered,
            socket: Some(socket),
            leg: None,
        })
    }

    async fn progress(&self, progress: PhoneProgress) {
        let _ = self.context.progress.send((self.session, progress)).await;
    }

    /// Starts the media leg toward `description`, or points the running one there.
    async fn media_to(&mut self, description: &[u8]) -> Result<(), CallEndReason> {
        let line = sdp::read(&String::from_utf8_lossy(description)).map_err(|e| {
            tracing::warn!("phone {}: the carrier's description: {e}", self.session);
            CallEndReason::PHONE_NETWORK_FAILED
        })?;
        if let Some(leg) = &self.leg {
            leg.update(line);
            return Ok(());
        }
        let Some(socket) = self.socket.take() else {
            return Err(CallEndReason::PHONE_NETWORK_FAILED);
        };
        let media = self.context.media.clone();
        let (leg, audio) = leg::start(self.session, socket, line, media.clone()).map_err(|e| {
            tracing::warn!("phone {}: media leg: {e}", self.session);
            CallEndReason::PHONE_NETWORK_FAILED
        })?;
        self.leg = Some(leg);
        let add = MediaCommand::AddPhone {
            session: self.session,
            audio,
        };
        media
            .send(add)
            .await
            .map_err(|_| CallEndReason::PHONE_NETWORK_FAILED)
    }

    /// Follows the call to its end: `Some(reason)` if the phone's side ended it, `None` if we
    /// hung up.
    async fn play(mut self, mut hung_up: oneshot::Receiver<()>) -> Option<CallEndReason> {
        let mut answered = false;
        let mut provisional = false;
        let ended = loop {
            tokio::select! {
                biased;
                state = self.states.recv() => match state {
                    Some(DialogState::Early(_, response)) => {
                        provisional = true;
                        match response.body.is_empty() {
                            true => self.progress(PhoneProgress::Ringing).await,
                            false => match self.media_to(&response.body).await {
                                Ok(()) => self.progress(PhoneProgress::EarlyMedia).await,
                                Err(reason) => break Some(reason),
                            },
                        }
                    }
                    Some(DialogState::Terminated(_, reason)) if answered => {
                        break match reason {
                            TerminatedReason::UasBye => Some(CallEndReason::REMOTE_HANG_UP),
                            _ => Some(CallEndReason::PHONE_NETWORK_FAILED),
                        };
                    }
                    Some(_) => {}
                    None if answered => break Some(CallEndReason::PHONE_NETWORK_FAILED),
                    None => {}
                },
                result = &mut self.answered, if !answered => match result {
                    Ok(Ok((_, Some(response)))) if response.status_code == StatusCode::OK => {
                        answered = true;
                        if let Err(reason) = self.media_to(&response.body).await {
                            let _ = self.dialog.bye().await;
                            break Some(reason);
                        }
                        self.progress(PhoneProgress::Answered).await;
                    }
                    Ok(Ok((_, Some(response)))) => break Some(reason_of(response.status_code.code())),
                    Ok(Ok((_, None))) => break Some(CallEndReason::PHONE_NETWORK_FAILED),
                    Ok(Err(e)) => {
                        tracing::warn!("phone {}: {e}", self.session);
                        break Some(CallEndReason::PHONE_NETWORK_FAILED);
                    }
                    Err(_) => break Some(CallEndReason::PHONE_NETWORK_FAILED),
                },
                _ = &mut hung_up => {
                    // Hung up here: CANCEL while it rings (nothing yet: stop retransmitting),
                    // BYE once answered.
                    match (answered, provisional) {
                        (true, _) => {
                            let _ = self.dialog.bye().await;
                        }
                        (false, true) => {
                            let _ = self.dialog.cancel().await;
                        }
                        (false, false) => self.answered.abort(),
                    }
                    break None;
                }
            }
        };
        self.context.dialogs.remove_dialog(&self.dialog.id());
        ended
    }
}
