/*
 * The session with the call service: signing in and out over the one WebSocket, and what the
 * service's messages change, including which streams this page subscribes to.
 */
import { VIDEO_SLOTS, describeReason, toRawId } from './protocol.js';
import { closeMedia, mediaFailed, openDevices, startMedia, updateSenders } from './media.js';
import { S, activeCalls, clearSlot, dropSub, endCall, newCall, note, render, safeSend, send, subKey } from './state.js';

/** The WebSocket address: `?ws=` when given, else /ws on this page's host. */
function serviceUrl() {
  const given = new URLSearchParams(location.search).get('ws');
  if (given) return given;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

// ---------------------------------------------------------------------------------------------
// Signing in: token, devices, WebSocket, hello -> welcome, then the peer connection

/** Resolves with the raw user id once the service welcomes this page. */
export async function signIn(userInput, name, pastedToken) {
  if (S.phase !== 'signed_out') throw new Error('already signed in');
  S.phase = 'signing_in';
  S.error = null;
  S.displayName = String(name || userInput || '').trim();
  render();
  try {
    const url = serviceUrl();
    let token = String(pastedToken || '').trim();
    if (!token) {
      const base = url.replace(/^ws/, 'http').replace(/\/ws$/, '');
      const res = await fetch(`${base}/dev/token?user=${encodeURIComponent(toRawId(userInput))}`);
      if (!res.ok) {
        const why = res.status === 404 ? 'development tokens are off on this service; paste a token' : await res.text();
        throw new Error(`no token (${res.status}): ${why}`);
      }
      token = (await res.json()).token;
    }
    await openDevices();
    return await connect(url, token, S.displayName);
  } catch (e) {
    S.phase = 'signed_out';
    note(`Sign-in failed: ${e.message}`, true);
    throw e;
  }
}

function connect(url, token, displayName) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    S.rt.ws = ws;
    S.rt.leaving = false;
    let welcomed = false;
    ws.onopen = () => send('hello', { token, display_name: displayName });
    ws.onmessage = (event) => {
      let m;
      try {
        m = JSON.parse(event.data);
      } catch {
        return note('The service sent a frame that is not JSON', true);
      }
      if (!welcomed) {
        if (m.type === 'welcome') {
          welcomed = true;
          S.user = m.user;
          S.phase = 'signed_in';
          note(`Signed in as ${m.user}`);
          startMedia().catch((e) => mediaFailed(e.message));
          resolve(m.user);
        } else if (m.type === 'error') {
          reject(new Error(`the service refused the sign-in (${m.code}): ${m.message}`));
        }
        return;
      }
      try {
        onMessage(m);
      } catch (e) {
        note(`Could not handle ${m.type}: ${e.message}`, true);
      }
      render();
    };
    ws.onclose = (event) => {
      if (welcomed) {
        if (S.rt.ws === ws) onClosed(event);
        return;
      }
      if (S.rt.ws === ws) S.rt.ws = null;
      reject(new Error(`could not reach the call service at ${url} (WebSocket closed, ${event.code})`));
    };
  });
}

/** The WebSocket closed: every call ends as a lost connection, media closes. */
function onClosed(event) {
  const lost = !S.rt.leaving;
  for (const call of S.calls.values()) {
    if (call.state !== 'disconnected') endCall(call, lost ? { code: 503, subcode: 0 } : { code: 0, subcode: 0 });
  }
  closeMedia();
  S.rt.ws = null;
  S.phase = 'signed_out';
  S.user = null;
  if (lost) note(`The connection to the call service was lost (WebSocket ${event.code}${event.reason ? `: ${event.reason}` : ''})`, true);
  else note('Signed out');
}

/** Hangs up every call, then closes the WebSocket; `onClosed` ends the rest. */
export function signOut() {
  const ws = S.rt.ws;
  if (!ws) return;
  // Shutting down is hanging up: the others hear a normal end, not a lost connection.
  for (const call of activeCalls()) safeSend('hang_up', { call_id: call.id });
  S.rt.leaving = true;
  ws.close(1000, 'signed out');
}

// ---------------------------------------------------------------------------------------------
// Server messages

function onMessage(m) {
  const call = m.call_id ? S.calls.get(m.call_id) : null;
  if (m.call_id && S.pendingPlace === m.call_id && m.type !== 'error') S.pendingPlace = null;
  switch (m.type) {
    case 'answer':
      S.rt.pc?.setRemoteDescription({ type: 'answer', sdp: m.sdp }).catch((e) => mediaFailed(`the answer was refused: ${e.message}`));
      break;
    case 'ice_candidate':
      S.rt.pc?.addIceCandidate({ candidate: m.candidate, sdpMLineIndex: 0 }).catch((e) => note(`Ignoring the service's candidate: ${e.message}`));
      break;
    case 'incoming_call': {
      const c = newCall(m.call_id, 'incoming', 'incoming');
      c.caller = m.caller;
      c.participants.set(m.caller.id, m.caller);
      S.calls.set(m.call_id, c);
      note(`${m.caller.display_name} (${m.caller.id}) is calling`);
      break;
    }
    case 'call_ringing':
      if (call) call.state = 'ringing';
      break;
    case 'call_early_media':
      if (call) call.state = 'early_media';
      break;
    case 'in_lobby':
      if (call) call.state = 'in_lobby';
      break;
    case 'call_connected':
      if (call) call.state = 'connected';
      break;
    case 'call_ended':
      if (call) endCall(call, m.reason);
      note(`Call ${m.call_id} ended: ${describeReason(m.reason)}`);
      break;
    case 'participant_updated':
      call?.participants.set(m.participant.id, m.participant);
      break;
    case 'participant_left': {
      const who = call?.participants.get(m.id)?.display_name || m.id;
      call?.participants.delete(m.id);
      for (const [key, sub] of S.subs) if (sub.callId === m.call_id && sub.participant === m.id) dropSub(key);
      note(`${who} left: ${describeReason(m.reason)}`);
      break;
    }
    case 'dominant_speakers':
      if (call) call.dominant = m.speakers;
      S.voiceSlots = m.slots || [];
      break;
    case 'video_routed': {
      const key = subKey({ callId: m.call_id, participant: m.participant, mediaType: m.media_type });
      const sub = S.subs.get(key) || { callId: m.call_id, participant: m.participant, mediaType: m.media_type, slot: null };
      S.subs.set(key, sub);
      if (sub.slot !== null && sub.slot !== m.slot) S.slots[sub.slot] = null;
      sub.slot = m.slot;
      S.slots[m.slot] = key;
      S.slotStats[m.slot] = null;
      S.rt.slotBase[m.slot] = S.rt.slotRaw[m.slot];
      S.rt.videoEls[m.slot]?.play().catch(() => {});
      break;
    }
    case 'video_unrouted': {
      const key = subKey({ callId: m.call_id, participant: m.participant, mediaType: m.media_type });
      const sub = S.subs.get(key);
      // Ours unsubscribed are gone already, and a pending one (slot null) is a re-subscription
      // on its way. What is left was unrouted by the service (its sender left): free the slot
      // but keep the entry, so it is not subscribed again before participant_left drops it.
      if (sub && sub.slot !== null) {
        clearSlot(key, sub);
        sub.slot = null;
      }
      break;
    }
    case 'error':
      onError(m);
      break;
    case 'welcome':
      break;
    default:
      note(`Ignoring an unknown message: ${m.type}`);
  }
  syncSubscriptions();
  updateSenders().catch((e) => note(`Could not switch tracks: ${e.message}`, true));
}

function onError(m) {
  const pending = S.pendingPlace && S.calls.get(S.pendingPlace);
  if (pending && ['connecting', 'ringing'].includes(pending.state)) {
    // The service refused the start_call / join_group itself: that call never existed.
    S.pendingPlace = null;
    endCall(pending, { code: 400, subcode: 0, text: m.message });
  }
  note(`The service refused a request (${m.code}): ${m.message}`, true);
  if (/offer|media service/i.test(m.message)) mediaFailed(m.message);
}

/** Like the Rust app: subscribe every available stream of connected participants (screen shares
 * first) up to the receive slots, unsubscribe the rest; unsubscribing goes first. */
function syncSubscriptions() {
  if (!S.rt.ws || S.phase !== 'signed_in') return;
  const wanted = [];
  for (const call of S.calls.values()) {
    if (call.state !== 'connected') continue;
    for (const p of call.participants.values()) {
      if (p.state !== 'connected') continue;
      for (const s of p.streams || []) {
        if (s.is_available) wanted.push({ callId: call.id, participant: p.id, mediaType: s.media_type });
      }
    }
  }
  wanted.sort((a, b) => (b.mediaType === 'screen_sharing') - (a.mediaType === 'screen_sharing'));
  const keep = new Map(wanted.slice(0, VIDEO_SLOTS).map((w) => [subKey(w), w]));
  for (const [key, sub] of [...S.subs]) {
    if (keep.has(key)) continue;
    dropSub(key);
    // A stream of a call that ended, or of someone who left, needs no unsubscribing.
    const call = S.calls.get(sub.callId);
    if (call?.state === 'connected' && call.participants.has(sub.participant)) {
      safeSend('unsubscribe', { call_id: sub.callId, participant: sub.participant, media_type: sub.mediaType });
    }
  }
  for (const [key, w] of keep) {
    if (S.subs.has(key)) continue;
    S.subs.set(key, { ...w, slot: null });
    safeSend('subscribe', { call_id: w.callId, participant: w.participant, media_type: w.mediaType });
  }
}
