//! What every phone call has, whichever side placed it: its session, its media socket and leg
//! once the far side's description is known, and the way it reports to the switchboard.

use std::net::SocketAddr;
use std::sync::Arc;

use call_protocol::CallEndReason;
use tokio::net::UdpSocket;

use super::leg::{self, Leg};
use super::sdp::{self, AudioLine};
use super::sip::Context;
use super::{CallCommand, GatewayEvent};
use crate::sfu::MediaCommand;
use crate::switchboard::{PhoneProgress, SessionId};

/// One phone call's media and reporting.
pub(super) struct Phone {
    pub(super) context: Arc<Context>,
    pub(super) session: SessionId,
    /// Where our RTP is received (in our descriptions).
    pub(super) rtp: SocketAddr,
    /// The media socket, until the leg takes it.
    socket: Option<UdpSocket>,
    leg: Option<Leg>,
}

impl Phone {
    /// A phone call with its media socket bound.
    pub(super) async fn new(
        context: &Arc<Context>,
        session: SessionId,
    ) -> Result<Self, CallEndReason> {
        let failed = |e: std::io::Error| {
            tracing::warn!("phone {session}: media socket: {e}");
            CallEndReason::PHONE_NETWORK_FAILED
        };
        let socket = UdpSocket::bind((context.media_ip, 0))
            .await
            .map_err(failed)?;
        let rtp = socket.local_addr().map_err(failed)?;
        Ok(Self {
            context: context.clone(),
            session,
            rtp,
            socket: Some(socket),
            leg: None,
        })
    }

    /// Tells the switchboard how the call progresses.
    pub(super) async fn progress(&self, progress: PhoneProgress) {
        let event = GatewayEvent::Progress(self.session, progress);
        let _ = self.context.events.send(event).await;
    }

    /// Starts the media leg toward `line` and adds the phone to the media loop, or points the
    /// running leg there.
    pub(super) async fn media_to(&mut self, line: AudioLine) -> Result<(), CallEndReason> {
        if let Some(leg) = &self.leg {
            leg.update(line);
            return Ok(());
        }
        let Some(socket) = self.socket.take() else {
            return Err(CallEndReason::PHONE_NETWORK_FAILED);
        };
        let media = self.context.media.clone();
        let events = self.context.events.clone();
        let (leg, audio) =
            leg::start(self.session, socket, line, media.clone(), events).map_err(|e| {
                tracing::warn!("phone {}: media leg: {e}", self.session);
                CallEndReason::PHONE_NETWORK_FAILED
            })?;
        self.leg = Some(leg);
        let session = self.session;
        media
            .send(MediaCommand::AddPhone { session, audio })
            .await
            .map_err(|_| CallEndReason::PHONE_NETWORK_FAILED)
    }

    /// [`Phone::media_to`] the audio line of a description from the far side.
    pub(super) async fn media_described(&mut self, sdp: &[u8]) -> Result<(), CallEndReason> {
        let line = sdp::read(&String::from_utf8_lossy(sdp)).map_err(|e| {
            tracing::warn!("phone {}: the far side's description: {e}", self.session);
            CallEndReason::PHONE_NETWORK_FAILED
        })?;
        self.media_to(line).await
    }

    /// Acts on a command that needs no SIP: digits go to the leg.
    pub(super) fn command(&self, command: CallCommand) {
        match (command, &self.leg) {
            (CallCommand::Dtmf(digits), Some(leg)) => leg.dtmf(&digits),
            (CallCommand::Dtmf(_), None) => {
                tracing::debug!("phone {}: digits before media are dropped", self.session);
            }
            (CallCommand::Answer | CallCommand::End(_), _) => {}
        }
    }

    /// The call is over: the switchboard hears why if the far side ended it (`Some`), and the
    /// media loop drops the phone.
    pub(super) async fn end(self, reason: Option<CallEndReason>) {
        if let Some(reason) = reason {
            self.progress(PhoneProgress::Ended(reason)).await;
        }
        let session = self.session;
        let _ = self
            .context
            .media
            .send(MediaCommand::RemovePeer { session })
            .await;
    }
}
