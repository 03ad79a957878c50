/*
 * The state every module shares, and the few helpers they all use: the page is rendered from `S`
 * alone, `note` logs, `send` speaks to the service, and the call records change only through the
 * functions at the end.
 */
import { MAX_MESSAGE_BYTES, PROTOCOL_VERSION, VIDEO_SLOTS } from './protocol.js';

/** Everything the page knows; the UI is rendered from it. `rt` holds the live browser objects. */
export const S = {
  phase: 'signed_out', // signed_out | signing_in | signed_in
  user: null, // raw id from welcome
  displayName: '',
  media: 'none', // the peer connection's connectionState
  error: null, // the banner
  log: [],
  calls: new Map(), // call id -> {id, state, direction, caller, muted, video, screen, participants: Map, dominant, endReason}
  subs: new Map(), // "call|participant|media_type" -> {callId, participant, mediaType, slot|null}
  slots: Array(VIDEO_SLOTS).fill(null), // video receive slot -> subscription key
  slotStats: Array(VIDEO_SLOTS).fill(null), // latest inbound-rtp figures per video slot
  voiceSlots: [], // whose voice each audio receive slot carries
  pendingPlace: null, // a start_call/join_group the service has not answered yet
  needsSoundClick: false,
  rt: { ws: null, pc: null, tx: null, local: { mic: null, camera: null, screen: null }, offerSent: false,
        candidates: [], leaving: false, callsHtml: '', slotRaw: Array(VIDEO_SLOTS).fill(0),
        slotBase: Array(VIDEO_SLOTS).fill(0), mediaTimer: null, statsTimer: null, videoEls: [], audioEls: [] },
};

// ---------------------------------------------------------------------------------------------
// Small helpers

export const $ = (id) => document.getElementById(id);
/** The key of a subscription in `S.subs` and `S.slots`. */
export const subKey = (s) => `${s.callId}|${s.participant}|${s.mediaType}`;

/** Draws the page from `S`; ui.js installs it (`setRenderer`) before anything can change, so the
 * modules below the UI redraw without importing it. */
let renderer = () => {};
export const render = () => renderer();
export function setRenderer(draw) {
  renderer = draw;
}

/** Adds a line to the log (and, for an error, to the banner), then redraws. */
export function note(text, isError = false) {
  S.log.push(`${new Date().toLocaleTimeString()}  ${text}`);
  if (S.log.length > 200) S.log.shift();
  if (isError) S.error = text;
  render();
}

/** Sends one frame; throws when the WebSocket is not open. */
export function send(type, fields = {}) {
  const ws = S.rt.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('not connected to the call service');
  const frame = JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields });
  const bytes = new TextEncoder().encode(frame).length;
  if (bytes > MAX_MESSAGE_BYTES) throw new Error(`the ${type} message is ${bytes} bytes, over the service's ${MAX_MESSAGE_BYTES}`);
  ws.send(frame);
}

/** Sends one frame; a failure is only noted. */
export function safeSend(type, fields) {
  try {
    send(type, fields);
  } catch (e) {
    note(`Could not send ${type}: ${e.message}`, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Call records and subscriptions

/** The calls in progress: neither still ringing here nor ended. */
export function activeCalls() {
  return [...S.calls.values()].filter((c) => !['incoming', 'disconnected'].includes(c.state));
}

export function newCall(id, state, direction) {
  return { id, state, direction, caller: null, muted: false, video: false, screen: false,
           participants: new Map(), dominant: [], endReason: null };
}

/** Ends a call for good: its subscriptions go, and only the last five ended calls stay. */
export function endCall(call, reason) {
  call.state = 'disconnected';
  call.endReason = reason;
  call.video = call.screen = false;
  for (const [key, sub] of S.subs) if (sub.callId === call.id) dropSub(key);
  // Keep the last few ended calls on screen with their reasons.
  const ended = [...S.calls.values()].filter((c) => c.state === 'disconnected');
  for (const old of ended.slice(0, Math.max(0, ended.length - 5))) S.calls.delete(old.id);
}

export function dropSub(key) {
  const sub = S.subs.get(key);
  S.subs.delete(key);
  if (sub) clearSlot(key, sub);
}

/** Frees the slot a subscription holds, if it still holds it. */
export function clearSlot(key, sub) {
  if (sub.slot !== null && S.slots[sub.slot] === key) {
    S.slots[sub.slot] = null;
    S.slotStats[sub.slot] = null;
  }
}
