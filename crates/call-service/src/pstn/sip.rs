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
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{Header, Method, StatusCode, Uri};
use rsipstack::transaction::endpoint::EndpointOption;
use rsipstack::transaction::{Endpoint, Transaction, TransactionReceiver};
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use tokio::sync::mpsc;

use super::dial_in::answer;
use super::dial_out::dial;
use super::{CallCommand, GatewayCommand, GatewayEvent, PstnConfig};
use crate::sfu::MediaCommand;
use crate::switchboard::SessionId;

/// How many commands may wait for one phone call's task.
pub(super) const CALL_COMMANDS: usize = 16;

/// How long a transaction waits for the other side (RFC 3261's 64·T1): short enough that a
/// trunk that never answers is given up on while the caller still waits.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(16);

/// What the gateway's tasks share.
pub(super) struct Context {
    pub(super) config: PstnConfig,
    pub(super) dialogs: Arc<DialogLayer>,
    /// Our SIP address, for From and Contact.
    pub(super) local: SocketAddr,
    /// The address media legs bind and advertise.
    pub(super) media_ip: IpAddr,
    pub(super) media: mpsc::Sender<MediaCommand>,
    pub(super) events: mpsc::Sender<GatewayEvent>,
}

impl Context {
    /// Our Contact.
    pub(super) fn contact(&self) -> Result<Uri, String> {
        self.dialogs
            .build_local_contact(Some("gateway".into()), None)
            .map_err(|e| e.to_string())
    }
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
    /// on `ip` and are advertised there too. What phones do goes to `events`.
    pub async fn bind(
        config: PstnConfig,
        ip: IpAddr,
        media: mpsc::Sender<MediaCommand>,
        events: mpsc::Sender<GatewayEvent>,
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
            events,
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
        let mut calls: HashMap<SessionId, mpsc::Sender<CallCommand>> = HashMap::new();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(GatewayCommand::Dial { session, number, .. }) => {
                        let (call, commands) = mpsc::channel(CALL_COMMANDS);
                        tokio::spawn(dial(self.context.clone(), session, number, commands));
                        register(&mut calls, session, call);
                    }
                    Some(GatewayCommand::Register { session, commands }) => {
                        register(&mut calls, session, commands);
                    }
                    Some(GatewayCommand::Message { session, message }) => {
                        let command = match message {
                            // The phone's call ended here: it hangs up, and its entry goes.
                            ServerMessage::CallEnded { reason, .. } => {
                                if let Some(call) = calls.remove(&session) {
                                    let _ = call.try_send(CallCommand::End(reason));
                                }
                                continue;
                            }
                            ServerMessage::CallConnected { .. } => CallCommand::Answer,
                            ServerMessage::DtmfReceived { tones, .. } => CallCommand::Dtmf(tones),
                            _ => continue,
                        };
                        if let Some(call) = calls.get(&session)
                            && call.try_send(command).is_err()
                        {
                            tracing::warn!("phone {session} does not take commands; one is dropped");
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

/// Keeps `call` as phone `session`'s task, dropping the entries of calls that ended by
/// themselves (their task is gone, so no message of the switchboard removed them).
fn register(
    calls: &mut HashMap<SessionId, mpsc::Sender<CallCommand>>,
    session: SessionId,
    call: mpsc::Sender<CallCommand>,
) {
    calls.retain(|_, call| !call.is_closed());
    calls.insert(session, call);
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
        Method::Invite => return answer(context, transaction).await,
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
pub(super) fn reason_of(code: u16) -> CallEndReason {
    match code {
        486 | 600 => CallEndReason::BUSY,
        404 | 484 | 604 => CallEndReason::NUMBER_NOT_FOUND,
        408 => CallEndReason::NO_ANSWER,
        480 => CallEndReason::PHONE_UNAVAILABLE,
        487 => CallEndReason::CANCELLED,
        603 => CallEndReason::DECLINED,
        code => CallEndReason::new(code, CallEndReason::PHONE_STATUS_SUBCODE),
    }
}
