//! A session's devices and video sources: which microphone, speaker and cameras are open, and
//! sending microphone frames.

use call_protocol::{CallId, ClientMessage, MediaType, StreamStopReason};

use super::AgentEvent;
use super::session::Session;
use crate::audio::{VOICE_LEVEL, VoiceProcessor, audio_level, rms};
use crate::connection::video_index;
use crate::device::{DeviceId, DeviceKind, Microphone, SourceEnd};

impl Session {
    /// Starts, switches or stops a call's camera or screen share, and tells the service and the app.
    pub(super) async fn set_video(
        &mut self,
        call_id: CallId,
        media_type: MediaType,
        source: Option<DeviceId>,
        stopped: Option<StreamStopReason>,
    ) {
        let i = video_index(media_type);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        call.video[i] = source;
        self.update_sources().await;
        let source = self.calls.get(&call_id).and_then(|c| c.video[i].clone());
        self.link.send(ClientMessage::SetVideo {
            call_id: call_id.clone(),
            media_type,
            on: source.is_some(),
            stopped,
        });
        self.emit(AgentEvent::LocalVideo {
            call_id,
            media_type,
            source,
            stopped,
            preview: self.senders[i].preview(),
        });
    }

    /// Holds or resumes a connected call: the service stops forwarding to and from it, and
    /// here its camera and screen share stop, nothing is sent and nothing is played. A call not
    /// connected yet is left to the service to refuse.
    pub(super) async fn set_hold(&mut self, call_id: CallId, held: bool) {
        self.link.send(ClientMessage::SetHold {
            call_id: call_id.clone(),
            held,
        });
        let Some(call) = self.calls.get_mut(&call_id).filter(|c| c.announced) else {
            return;
        };
        if call.held == held {
            return;
        }
        call.held = held;
        self.playout.set_held(self.all_held());
        self.update_sources().await;
        self.emit(AgentEvent::HoldChanged { call_id, held });
    }

    /// Whether every connected call is on hold (and there is one).
    pub(super) fn all_held(&self) -> bool {
        let mut connected = self.calls.values().filter(|c| c.announced).peekable();
        connected.peek().is_some() && connected.all(|c| c.held)
    }

    /// Points each video sender at the source some call wants (one camera and one screen share
    /// are sent at a time), opening it if it changed. A source that fails to open is reported and
    /// that stream goes off in its calls, so no state claims video that is not sent.
    pub(super) async fn update_sources(&mut self) {
        for i in 0..self.senders.len() {
            let wanted = self
                .calls
                .values()
                .filter(|c| !c.held)
                .find_map(|c| c.video[i].clone());
            if wanted == self.sources[i] {
                continue;
            }
            let opened = match &wanted {
                Some(id) => match self.devices.open_camera_async(id).await {
                    Ok(camera) => Some(camera),
                    Err(error) => {
                        for call in self
                            .calls
                            .values_mut()
                            .filter(|c| c.video[i].as_ref() == Some(id))
                        {
                            call.video[i] = None;
                        }
                        self.emit(AgentEvent::DeviceFailed {
                            kind: DeviceKind::Camera,
                            error,
                        });
                        None
                    }
                },
                None => None,
            };
            self.sources[i] = opened.as_ref().map(|c| c.id.clone());
            self.senders[i].set_camera(opened);
        }
    }

    /// A video source ended by itself (a shared window closed): every call sending from it
    /// stops that stream, telling the others why. A source already replaced is ignored.
    pub(super) async fn source_ended(
        &mut self,
        media_type: MediaType,
        source: DeviceId,
        end: SourceEnd,
    ) {
        let i = video_index(media_type);
        if self.sources[i].as_ref() != Some(&source) {
            return;
        }
        tracing::info!("{media_type:?} source {source} ended: {end}");
        let stopped = match end {
            SourceEnd::WindowClosed => StreamStopReason::SourceClosed,
            SourceEnd::Failed(_) => StreamStopReason::SourceFailed,
        };
        let sending: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| c.video[i].as_ref() == Some(&source))
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in sending {
            self.set_video(call_id, media_type, None, Some(stopped))
                .await;
        }
    }

    /// Switches the microphone, speaker or camera. An open microphone or speaker is closed and
    /// the new one opened in its place, so calls, streams, mute and hold go on untouched; a
    /// camera is switched in every call that sends camera video.
    pub(super) async fn set_device(&mut self, kind: DeviceKind, device: Option<DeviceId>) {
        match kind {
            DeviceKind::Microphone => {
                self.config.microphone = device;
                self.microphone = None;
                self.processor = None;
                self.level.set(0.0);
            }
            DeviceKind::Speaker => {
                self.config.speaker = device;
                self.speaker = None;
            }
            DeviceKind::Camera | DeviceKind::Screen => {
                let media_type = match kind {
                    DeviceKind::Camera => MediaType::Video,
                    _ => MediaType::ScreenSharing,
                };
                let i = video_index(media_type);
                let sending: Vec<CallId> = self
                    .calls
                    .iter()
                    .filter(|(_, c)| c.video[i].is_some())
                    .map(|(id, _)| id.clone())
                    .collect();
                for call_id in sending {
                    self.set_video(call_id, media_type, device.clone(), None)
                        .await;
                }
                return;
            }
        }
        self.devices_failed = false;
        self.update_devices().await;
    }

    /// Starts or stops the microphone path's processing as the mode and the open microphone
    /// say: a new processor starts from scratch (a new echo path).
    pub(super) fn update_processor(&mut self) {
        let applies = self.microphone.is_some()
            && self.config.microphone.as_ref().is_some_and(|id| {
                let synthetic = self.devices.is_synthetic(id);
                self.config.voice_processing.applies_to(synthetic)
            });
        match (applies, self.processor.is_some()) {
            (true, false) => self.processor = Some(VoiceProcessor::new()),
            (false, true) => self.processor = None,
            _ => {}
        }
    }

    /// Opens the devices while a call is connected and closes them when none is.
    pub(super) async fn update_devices(&mut self) {
        let active = self.media_up && self.calls.values().any(|c| c.announced);
        if !active {
            self.microphone = None;
            self.speaker = None;
            self.devices_failed = false;
            self.level.set(0.0);
            return;
        }
        if self.devices_failed {
            return;
        }
        if self.microphone.is_none()
            && let Some(id) = &self.config.microphone
        {
            let frame = self.config.voice_frame.samples();
            match self.devices.open_microphone_async(id, frame).await {
                Ok(m) => {
                    self.microphone = Some(m);
                    self.update_processor();
                }
                Err(error) => {
                    self.devices_failed = true;
                    self.emit(AgentEvent::DeviceFailed {
                        kind: DeviceKind::Microphone,
                        error,
                    });
                }
            }
        }
        if self.speaker.is_none()
            && let Some(id) = &self.config.speaker
        {
            match self
                .devices
                .open_speaker_async(id, self.playout.clone())
                .await
            {
                Ok(s) => self.speaker = Some(s),
                Err(error) => {
                    self.devices_failed = true;
                    self.emit(AgentEvent::DeviceFailed {
                        kind: DeviceKind::Speaker,
                        error,
                    });
                }
            }
        }
    }

    /// Encodes and sends one microphone frame, or silence while every connected call is muted;
    /// nothing while every one is on hold.
    pub(super) async fn send_frame(&mut self, mut samples: Vec<f32>) {
        self.level.set(rms(&samples));
        if let Some(processor) = &mut self.processor {
            processor.process(&mut self.reference, &mut samples);
        }
        if self.all_held() {
            return;
        }
        let muted = self.calls.values().filter(|c| c.announced).all(|c| c.muted);
        let samples = if muted {
            &self.silence[..]
        } else {
            &samples[..]
        };
        let level = audio_level(samples);
        let voice = level <= VOICE_LEVEL;
        match self.encoder.encode(samples) {
            Ok(packet) => {
                let duration = samples.len() as f64 / crate::device::SAMPLE_RATE as f64;
                let duration = std::time::Duration::from_secs_f64(duration);
                if let Err(e) = self
                    .connection
                    .send_audio(packet, duration, level, voice)
                    .await
                {
                    tracing::debug!("sending audio failed: {e}");
                }
            }
            Err(e) => tracing::warn!("opus encode failed: {e}"),
        }
    }
}

/// The next microphone frame, or never when no microphone is open.
pub(super) async fn next_frame(
    microphone: &mut Option<Microphone>,
) -> Option<crate::device::AudioFrame> {
    match microphone {
        Some(m) => m.frames.recv().await,
        None => std::future::pending().await,
    }
}
