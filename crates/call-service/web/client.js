/*
 * bevy_calling web client: plain JS, no build step, no libraries. It speaks the signaling
 * protocol of crates/call-protocol and offers the same media lines as the Rust client
 * (crates/call-media/src/connection/mod.rs), so a browser joins calls like any other client.
 *
 * The entry module the page loads. The others, each importing only those above it:
 *   protocol.js  the signaling protocol: constants, reason and state names, identifiers
 *   state.js     the shared state `S`, logging, sending, the call records
 *   media.js     the devices and the one RTCPeerConnection
 *   session.js   signing in and out, and the service's messages
 *   calls.js     the call actions
 *   ui.js        rendering and the page's controls
 */
import { newGroupId } from './protocol.js';
import { stats } from './media.js';
import { signIn, signOut } from './session.js';
import {
  acceptIncoming, declineIncoming, hangUp, joinGroup, setMuted, setScreenShare, setVideo, snapshot, startCall,
} from './calls.js';
import { init } from './ui.js';

/** The automation hook: what a WebDriver test drives. Every method throws (or rejects) with a
 * sentence when the request does not fit the current state. */
window.bc = {
  signIn: (user, name, token) => signIn(user, name ?? user, token),
  signOut,
  call: startCall,
  joinGroup,
  newGroupId,
  acceptIncoming,
  declineIncoming,
  setMuted,
  setVideo,
  setScreenShare,
  hangUp,
  state: snapshot,
  stats,
};

init();
