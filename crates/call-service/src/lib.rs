//! The bevy_calling call service: access tokens, WebSocket signaling and a str0m SFU.
//!
//! It runs in-process ([`CallService::start`], the embedded default of tests and the app) or as
//! the `call-service` binary.
//!
//! # Data flow
//! 1. A client fetches a token ([`token`]: CLI, `GET /dev/token`, or [`CallService::issue_token`])
//!    and opens `/ws`. Its `hello` is checked; a bad token gets a typed error and no session.
//! 2. The client's one SDP offer becomes a str0m peer in the [`sfu`] loop, which owns the single
//!    UDP socket. The answer goes back only after the loop owns the peer.
//! 3. Call requests go to the [`switchboard`], plain data that returns messages and routes.
//! 4. Routes reach the SFU's [`router`], which sends each participant's audio to the others'
//!    receive slots and video to the slots subscribed to it; [`forward`] turns each received
//!    packet into numbered copies, one per leg. The SFU reports who speaks back to signaling.
//!
//! 5. With a carrier trunk ([`pstn`]), calls to `4:+<E.164>` go out over SIP and numbers on the
//!    trunk ring users here; a phone is a member of the call whose audio the gateway codes
//!    between the SFU's Opus and the phone's G.711.
//!
//! A browser joins through the web client served at `/`, which speaks the same protocol; with a
//! certificate ([`TlsIdentity`]) all of it is served over HTTPS and WSS.
//!
//! No Bevy here: the client plugin depends on this crate, never the other way.
#![warn(missing_docs)]

pub mod echo;
pub mod forward;
pub mod pstn;
pub mod router;
mod service;
pub mod sfu;
mod signaling;
pub mod speakers;
pub mod switchboard;
mod tls;
pub mod token;
mod web;

pub use service::{CallService, DEFAULT_RING_TIMEOUT, ServiceConfig, ServiceError};
pub use sfu::PeerTraffic;
pub use tls::TlsIdentity;
