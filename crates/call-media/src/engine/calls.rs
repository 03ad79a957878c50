//! A session's requests and the service's messages: call commands become signaling messages
//! (and local state), server messages become facts for the app.

use call_protocol::{CallId, ClientMessage, MediaType, ServerMessage};

use super::session::{CallEntry, Session};
use super::{AgentCommand, AgentError, AgentEvent};
use crate::device::DeviceId;

impl Session {
    pub(super) async fn command(&mut self, command: AgentCommand) {
        let message = match command {
            AgentCommand::StartCall {
                call_id,
                targets,
                camera,
            } => {
                let start = ClientMessage::StartCall {
                    call_id: call_id.clone(),
                    targets,
                };
                self.place(call_id, start, camera).await;
                return;
            }
            AgentCommand::SetVideo {
                call_id,
                media_type,
                source,
            } => {
                self.set_video(call_id, media_type, source, None).await;
                return;
            }
            AgentCommand::Subscribe {
                call_id,
                participant,
                media_type,
            } => ClientMessage::Subscribe {
                call_id,
                participant,
                media_type,
            },
            AgentCommand::Unsubscribe {
                call_id,
                participant,
                media_type,
            } => ClientMessage::Unsubscribe {
                call_id,
                participant,
                media_type,
            },
            AgentCommand::JoinGroup { call_id, camera } => {
                let join = ClientMessage::JoinGroup {
                    call_id: call_id.clone(),
                };
                self.place(call_id, join, camera).await;
                return;
            }
            AgentCommand::AddParticipants { call_id, targets } => {
                ClientMessage::AddParticipants { call_id, targets }
            }
            AgentCommand::RemoveParticipant {
                call_id,
                participant,
            } => ClientMessage::RemoveParticipant {
                call_id,
                participant,
            },
            AgentCommand::EndForEveryone(call_id) => ClientMessage::EndForEveryone { call_id },
            AgentCommand::SendDtmf { call_id, tones } => ClientMessage::SendDtmf { call_id, tones },
            AgentCommand::SetLobby { call_id, enabled } => {
                ClientMessage::SetLobby { call_id, enabled }
            }
            AgentCommand::Admit {
                call_id,
                participant,
                admit,
            } => ClientMessage::Admit {
                call_id,
                participant,
                admit,
            },
            AgentCommand::AcceptCall(call_id) => ClientMessage::AcceptCall { call_id },
            AgentCommand::RejectCall(call_id) => ClientMessage::RejectCall { call_id },
            AgentCommand::HangUp(call_id) => ClientMessage::HangUp { call_id },
            AgentCommand::PlaceVoice { participant, gains } => {
                self.voices.place(participant, gains, &self.playout);
                return;
            }
            AgentCommand::SetVoiceProcessing(mode) => {
                self.config.voice_processing = mode;
                self.update_processor();
                return;
            }
            AgentCommand::SetDevice { kind, device } => {
                self.set_device(kind, device).await;
                return;
            }
            AgentCommand::SetHold { call_id, held } => {
                self.set_hold(call_id, held).await;
                return;
            }
            AgentCommand::SetMuted { call_id, muted } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.muted = muted;
                }
                ClientMessage::SetMuted { call_id, muted }
            }
        };
        self.link.send(message);
    }

    /// Places a call (`message` starts or joins it), with video from `camera` if one is given.
    async fn place(&mut self, call_id: CallId, message: ClientMessage, camera: Option<DeviceId>) {
        self.calls.insert(call_id.clone(), CallEntry::default());
        self.link.send(message);
        if camera.is_some() {
            self.set_video(call_id, MediaType::Video, camera, None)
                .await;
        }
    }

    pub(super) async fn server_message(
        &mut self,
        message: ServerMessage,
    ) -> Result<(), AgentError> {
        match message {
            ServerMessage::Answer { sdp } => {
                self.connection
                    .apply_answer(sdp)
                    .await
                    .map_err(|e| AgentError::Media(e.to_string()))?;
                self.answered_at = Some(tokio::time::Instant::now());
            }
            ServerMessage::IceCandidate { candidate } => {
                if let Err(e) = self.connection.add_remote_candidate(candidate).await {
                    tracing::debug!("ignoring the service's candidate: {e}");
                }
            }
            ServerMessage::IncomingCall { call_id, caller } => {
                self.calls.insert(call_id.clone(), CallEntry::default());
                self.emit(AgentEvent::IncomingCall { call_id, caller });
            }
            ServerMessage::CallRinging { call_id } => self.emit(AgentEvent::CallRinging(call_id)),
            ServerMessage::CallEarlyMedia { call_id } => {
                self.emit(AgentEvent::CallEarlyMedia(call_id))
            }
            ServerMessage::InLobby { call_id } => self.emit(AgentEvent::CallInLobby(call_id)),
            ServerMessage::DtmfReceived {
                call_id,
                from,
                tones,
            } => self.emit(AgentEvent::DtmfReceived {
                call_id,
                from,
                tones,
            }),
            ServerMessage::DominantSpeakers {
                call_id,
                speakers,
                slots,
            } => {
                self.voices.slots(call_id.clone(), slots, &self.playout);
                self.emit(AgentEvent::DominantSpeakers { call_id, speakers })
            }
            ServerMessage::CallConnected { call_id } => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    call.connected = true;
                }
                self.announce_connected().await;
            }
            ServerMessage::CallEnded { call_id, reason } => {
                if self
                    .calls
                    .remove(&call_id)
                    .is_some_and(|c| c.video.iter().any(Option::is_some))
                {
                    self.update_sources().await;
                }
                self.stats.call_ended(&call_id);
                self.voices.call_ended(&call_id, &self.playout);
                // A call that ended on hold must not keep the speaker silent for the next one.
                self.playout.set_held(self.all_held());
                self.emit(AgentEvent::CallEnded { call_id, reason });
                self.update_devices().await;
            }
            ServerMessage::ParticipantUpdated {
                call_id,
                participant,
            } => {
                self.emit(AgentEvent::ParticipantUpdated {
                    call_id,
                    participant,
                });
            }
            ServerMessage::ParticipantLeft {
                call_id,
                id,
                reason,
            } => {
                self.emit(AgentEvent::ParticipantLeft {
                    call_id,
                    id,
                    reason,
                });
            }
            ServerMessage::Error { code, message } => {
                self.emit(AgentEvent::RequestFailed { code, message })
            }
            ServerMessage::Welcome { .. } => {}
            ServerMessage::VideoRouted {
                call_id,
                participant,
                media_type,
                slot,
            } => {
                if let Some(frames) = self.connection.video_frames(slot as usize) {
                    self.stats.routed(
                        slot as usize,
                        call_id.clone(),
                        participant.clone(),
                        media_type,
                    );
                    self.emit(AgentEvent::VideoRouted {
                        call_id,
                        participant,
                        media_type,
                        frames,
                    });
                }
            }
            ServerMessage::VideoUnrouted {
                call_id,
                participant,
                media_type,
            } => {
                self.stats.unrouted(&call_id, &participant, media_type);
                self.emit(AgentEvent::VideoUnrouted {
                    call_id,
                    participant,
                    media_type,
                })
            }
        }
        Ok(())
    }
}
