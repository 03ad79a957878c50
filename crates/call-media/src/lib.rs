//! The bevy_calling media engine: signaling client, webrtc-rs media connection, Opus audio and
//! devices. No Bevy here; the plugin drives it through [`Agent`].
//!
//! # Data flow
//! 1. [`Agent::spawn`] starts a task on a [`MediaRuntime`] that many agents share. It signs in over the
//!    signaling WebSocket and opens one WebRTC connection to the service, before any call.
//! 2. While a call is connected, the chosen [`device`] microphone delivers 20 ms frames; each is
//!    Opus-encoded with its RFC 6464 level ([`audio`]) and sent on the connection.
//! 3. The service's SFU forwards the other participants' audio into receive slots; each packet
//!    goes into a slot's jitter buffer in [`audio::Playout`].
//! 4. The speaker pulls mixed, decoded audio from the playout on its own clock.
//! 5. Calls and participants change by the service's messages; the engine reports them as
//!    [`AgentEvent`]s on a crossbeam channel.
#![warn(missing_docs)]

pub mod audio;
mod connection;
pub mod device;
mod engine;
mod seq;
mod signaling;
pub mod video;

pub use connection::ConnectionError;
pub use engine::{
    Agent, AgentCommand, AgentConfig, AgentConnection, AgentError, AgentEvent, COMMAND_QUEUE,
    CommandError, EVENT_QUEUE, MediaRuntime,
};
