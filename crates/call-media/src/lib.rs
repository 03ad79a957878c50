//! The bevy_calling media engine: signaling client, webrtc-rs media connection, Opus audio,
//! H.264 video and devices. No Bevy here; the plugin drives it through [`Agent`].
//!
//! # Data flow
//! 1. [`Agent::spawn`] starts a task on a [`MediaRuntime`] that many agents share. It signs in
//!    over the signaling WebSocket and opens one WebRTC connection to the service, before any
//!    call, bound to the interface its signaling connection uses.
//! 2. While a call is connected, the chosen [`device`] microphone delivers 20 ms frames; each is
//!    Opus-encoded with its RFC 6464 level ([`audio`]) and sent on the connection.
//! 3. The service's SFU forwards the other participants' audio into receive slots; each packet
//!    goes through a lock-free ring into that slot's jitter buffer in [`audio::Playout`], which
//!    the speaker drains, decodes and mixes on its own clock.
//! 4. A camera's frames are encoded to H.264 on a thread per stream ([`video`]) and sent; a
//!    subscribed stream's packets are reordered, repaired (NACK, then a keyframe request) and
//!    decoded on a thread per receive slot into a latest-frame [`video::FrameSlot`].
//! 5. Calls and participants change by the service's messages; the engine reports them as
//!    [`AgentEvent`]s on a bounded crossbeam channel.
#![warn(missing_docs)]

pub mod audio;
mod connection;
pub mod device;
mod engine;
mod seq;
mod signaling;
pub mod stats;
pub mod video;
mod wake;

pub use connection::ConnectionError;
pub use engine::{
    Agent, AgentCommand, AgentConfig, AgentConnection, AgentError, AgentEvent, COMMAND_QUEUE,
    CommandError, EVENT_QUEUE, MediaRuntime,
};
