/*
 * The signaling protocol of crates/call-protocol as the web client speaks it: its constants, the
 * names of its reasons and states, and the identifiers it carries.
 *
 * Signaling: one WebSocket at /ws. Every frame is {"v":1,"type":"<snake_case>",...}.
 *   -> hello {token, display_name}          <- welcome {user:"8:acs:alice"} (or error, then close)
 *   -> offer {sdp}                          <- answer {sdp}  (str0m SFU, ICE-lite, host candidate
 *   -> ice_candidate {candidate:"candidate:..."}   in the answer; the browser is full ICE and
 *                                                   controlling, and trickles its candidates)
 *   -> start_call {call_id, targets:["8:acs:bob"]}  <- call_ringing, call_connected, call_ended
 *   -> join_group {call_id:"<GUID>"}                <- call_connected | in_lobby
 *   <- incoming_call {call_id, caller}  -> accept_call {call_id} | reject_call {call_id}
 *   -> set_muted {call_id, muted}   -> set_video {call_id, media_type, on[, stopped]}
 *   -> hang_up {call_id}            <- participant_updated {call_id, participant}, participant_left
 *   -> subscribe / unsubscribe {call_id, participant, media_type}
 *   <- video_routed {call_id, participant, media_type, slot}   <- video_unrouted {...}
 *   <- dominant_speakers {call_id, speakers, slots}            <- error {code, message}
 * Identifiers are raw strings ("8:acs:<id>", "4:+<digits>", "8:echo123"); media_type is
 * "video" | "screen_sharing"; end reasons are {code, subcode}.
 */

export const PROTOCOL_VERSION = 1;
export const MAX_MESSAGE_BYTES = 256 * 1024;
export const AUDIO_SLOTS = 3;
export const VIDEO_SLOTS = 10;

const END_REASONS = {
  '0/0': 'the local user hung up', '0/1': 'a remote participant hung up',
  '0/2': 'an organizer ended the call for everyone', '0/3': 'an organizer removed the participant from the call',
  '400/0': 'the request was invalid', '403/0': 'an organizer did not admit the participant from the lobby',
  '404/0': 'no user with that identity is signed in to the service', '408/0': 'the callee did not answer in time',
  '487/0': 'the caller hung up before the call was answered', '603/0': 'the callee declined the call',
  '603/1': 'the local user rejected the incoming call', '503/0': 'the connection to the call service was lost',
  '503/1': 'the media connection to the call service failed',
  '503/2': 'a remote participant lost their connection to the service',
};
export const CALL_STATES = {
  incoming: 'Incoming call', connecting: 'Connecting', ringing: 'Ringing', in_lobby: 'Waiting in the lobby',
  connected: 'Connected', remote_hold: 'On hold (by the other side)', disconnecting: 'Hanging up', disconnected: 'Ended',
};
export const PARTICIPANT_STATES = {
  idle: 'Idle', early_media: 'Early media', connecting: 'Connecting', connected: 'Connected', hold: 'On hold',
  in_lobby: 'In the lobby', disconnected: 'Left',
};
export const MEDIA_NAMES = { video: 'camera', screen_sharing: 'screen' };

// ---------------------------------------------------------------------------------------------
// Identifiers

const hex = (bytes) => [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
/** Like `CallId::random`: 128 random bits as 32 hex digits. */
export const randomCallId = () => hex(16);
/** Like `CallId::new_group`: 32 random hex digits as a GUID (8-4-4-4-12). */
export function newGroupId() {
  const h = hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
export const isGuid = (id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);

/** "alice" -> "8:acs:alice"; raw ids ("8:acs:…", "4:+…", "8:echo123") pass unchanged. */
export function toRawId(input) {
  const s = String(input ?? '').trim();
  if (s === '8:echo123' || /^4:\+\d{7,15}$/.test(s)) return s;
  const id = s.startsWith('8:acs:') ? s.slice(6) : s;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new Error(`"${s}" is not a valid user id: use 1 to 128 of A-Z a-z 0-9 - _ .`);
  return `8:acs:${id}`;
}

/** An end reason as a sentence, with its code: its own text, else the one this version knows. */
export function describeReason(r) {
  if (!r) return '';
  return `${r.text || END_REASONS[`${r.code}/${r.subcode}`] || 'the call ended for a reason this version does not know'} (${r.code}/${r.subcode})`;
}
