/*
 * bevy_calling web client: plain JS, no build step, no libraries. It speaks the signaling
 * protocol of crates/call-protocol and offers the same media lines as the Rust client
 * (crates/call-media/src/connection/mod.rs), so a browser joins calls like any other client.
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
 *
 * Media: ONE RTCPeerConnection, all lines offered at sign-in, never renegotiated. Transceiver
 * (= m-line, mid "0".."15") order, exactly as the Rust client adds them:
 *   0        audio sendonly   microphone (Opus)
 *   1..3     audio recvonly   audio receive slots 0..2 (AUDIO_SLOTS = 3, the dominant speakers)
 *   4        video sendonly   camera (H.264 42e01f, packetization-mode=1, + RTX)
 *   5        video sendonly   screen share (no track unless sharing)
 *   6..15    video recvonly   video receive slots 0..9 (VIDEO_SLOTS = 10)
 * The SFU takes the first send-only video line as the camera, the second as the screen share,
 * and numbers receive slots by the order of the receive-only lines of each kind: video_routed's
 * `slot` N is transceiver 6 + N.
 */
'use strict';

const PROTOCOL_VERSION = 1;
const MAX_MESSAGE_BYTES = 64 * 1024;
const AUDIO_SLOTS = 3;
const VIDEO_SLOTS = 10;
const MEDIA_TIMEOUT_MS = 20000;
const CAMERA = { audio: true, video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } } };

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
const CALL_STATES = {
  incoming: 'Incoming call', connecting: 'Connecting', ringing: 'Ringing', in_lobby: 'Waiting in the lobby',
  connected: 'Connected', remote_hold: 'On hold (by the other side)', disconnecting: 'Hanging up', disconnected: 'Ended',
};
const PARTICIPANT_STATES = {
  idle: 'Idle', early_media: 'Early media', connecting: 'Connecting', connected: 'Connected', hold: 'On hold',
  in_lobby: 'In the lobby', disconnected: 'Left',
};
const MEDIA_NAMES = { video: 'camera', screen_sharing: 'screen' };

/** Everything the page knows; the UI is rendered from it. `rt` holds the live browser objects. */
const S = {
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

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const hex = (bytes) => [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
/** Like `CallId::random`: 128 random bits as 32 hex digits. */
const randomCallId = () => hex(16);
/** Like `CallId::new_group`: 32 random hex digits as a GUID (8-4-4-4-12). */
function newGroupId() {
  const h = hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
const isGuid = (id) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id);
const subKey = (s) => `${s.callId}|${s.participant}|${s.mediaType}`;

/** "alice" -> "8:acs:alice"; raw ids ("8:acs:…", "4:+…", "8:echo123") pass unchanged. */
function toRawId(input) {
  const s = String(input ?? '').trim();
  if (s === '8:echo123' || /^4:\+\d{7,15}$/.test(s)) return s;
  const id = s.startsWith('8:acs:') ? s.slice(6) : s;
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id)) throw new Error(`"${s}" is not a valid user id: use 1 to 128 of A-Z a-z 0-9 - _ .`);
  return `8:acs:${id}`;
}

function describeReason(r) {
  if (!r) return '';
  return `${r.text || END_REASONS[`${r.code}/${r.subcode}`] || 'the call ended for a reason this version does not know'} (${r.code}/${r.subcode})`;
}

function note(text, isError = false) {
  S.log.push(`${new Date().toLocaleTimeString()}  ${text}`);
  if (S.log.length > 200) S.log.shift();
  if (isError) S.error = text;
  render();
}

function send(type, fields = {}) {
  const ws = S.rt.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('not connected to the call service');
  ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
}

function serviceUrl() {
  const given = new URLSearchParams(location.search).get('ws');
  if (given) return given;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

// ---------------------------------------------------------------------------------------------
// Signing in: token, devices, WebSocket, hello -> welcome, then the peer connection

async function signIn(userInput, name, pastedToken) {
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

/** Captures microphone and camera once; falls back to the microphone alone, then to nothing. */
async function openDevices() {
  const L = S.rt.local;
  if (L.mic || L.camera) return;
  if (!navigator.mediaDevices?.getUserMedia) {
    note('No camera or microphone access here (it needs https or localhost): joining receive-only');
    return;
  }
  let stream = null;
  try {
    stream = await navigator.mediaDevices.getUserMedia(CAMERA);
  } catch (e) {
    note(`Camera unavailable (${e.name}); trying the microphone alone`);
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e2) {
      note(`No microphone either (${e2.name}): joining receive-only`);
    }
  }
  L.mic = stream?.getAudioTracks()[0] || null;
  L.camera = stream?.getVideoTracks()[0] || null;
  if (L.camera) {
    L.camera.contentHint = 'motion';
    $('local-video').srcObject = new MediaStream([L.camera]);
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

function signOut() {
  const ws = S.rt.ws;
  if (!ws) return;
  // Shutting down is hanging up: the others hear a normal end, not a lost connection.
  for (const call of activeCalls()) safeSend('hang_up', { call_id: call.id });
  S.rt.leaving = true;
  ws.close(1000, 'signed out');
}

function closeMedia() {
  clearTimeout(S.rt.mediaTimer);
  clearInterval(S.rt.statsTimer);
  S.rt.pc?.close();
  S.rt.pc = null;
  S.rt.tx = null;
  S.rt.offerSent = false;
  S.rt.candidates = [];
  S.media = 'none';
  S.subs.clear();
  S.slots.fill(null);
  S.slotStats.fill(null);
  S.rt.slotRaw.fill(0);
  S.rt.slotBase.fill(0);
  for (const el of S.rt.videoEls) el.srcObject = null;
  for (const el of S.rt.audioEls) el.srcObject = null;
}

// ---------------------------------------------------------------------------------------------
// The one peer connection

/** Receive capabilities filtered to what the SFU speaks: H.264 42e01f pm=1 (+ RTX), Opus. */
function codecPreferences() {
  const fmtp = (c) => new Map((c.sdpFmtpLine || '').split(';').map((kv) => kv.trim().split('=')));
  const video = RTCRtpReceiver.getCapabilities?.('video')?.codecs;
  const audio = RTCRtpReceiver.getCapabilities?.('audio')?.codecs;
  if (!video || !audio) return null;
  const h264 = video.filter((c) => c.mimeType.toLowerCase() === 'video/h264'
    && fmtp(c).get('profile-level-id')?.toLowerCase() === '42e01f' && fmtp(c).get('packetization-mode') === '1');
  const sends = RTCRtpSender.getCapabilities?.('video')?.codecs?.some((c) => c.mimeType.toLowerCase() === 'video/h264');
  if (!h264.length || sends === false) {
    throw new Error('this browser has no H.264 Constrained Baseline (profile-level-id=42e01f, packetization-mode=1), '
      + 'the only video codec the call service forwards. Use Chrome, Edge or Safari, or Firefox with its OpenH264 plugin.');
  }
  const rtx = video.filter((c) => c.mimeType.toLowerCase() === 'video/rtx');
  const opus = audio.filter((c) => c.mimeType.toLowerCase() === 'audio/opus');
  return { video: [...h264, ...rtx], audio: opus };
}

async function startMedia() {
  const prefs = codecPreferences();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  S.rt.pc = pc;
  const L = S.rt.local;
  const sendOnly = { direction: 'sendonly' };
  const recvOnly = { direction: 'recvonly' };
  // The order is the protocol (see the header): the SFU reads the lines by position.
  const tx = { mic: pc.addTransceiver(L.mic || 'audio', sendOnly), audio: [], camera: null, screen: null, video: [] };
  for (let i = 0; i < AUDIO_SLOTS; i++) tx.audio.push(pc.addTransceiver('audio', recvOnly));
  tx.camera = pc.addTransceiver(L.camera || 'video', sendOnly);
  tx.screen = pc.addTransceiver('video', sendOnly);
  for (let i = 0; i < VIDEO_SLOTS; i++) tx.video.push(pc.addTransceiver('video', recvOnly));
  S.rt.tx = tx;
  if (prefs && typeof RTCRtpTransceiver.prototype.setCodecPreferences === 'function') {
    for (const t of pc.getTransceivers()) {
      try {
        t.setCodecPreferences(t.receiver.track.kind === 'video' ? prefs.video : prefs.audio);
      } catch (e) {
        note(`Could not set codec preferences (${e.message}); the offer keeps every codec`);
      }
    }
  } else {
    note('This browser cannot set codec preferences; relying on the service to pick H.264 and Opus');
  }
  tx.audio.forEach((t, i) => {
    const el = S.rt.audioEls[i];
    el.srcObject = new MediaStream([t.receiver.track]);
    el.play().catch(() => { S.needsSoundClick = true; render(); });
  });
  tx.video.forEach((t, i) => { S.rt.videoEls[i].srcObject = new MediaStream([t.receiver.track]); });

  pc.onicecandidate = ({ candidate }) => {
    if (!candidate?.candidate) return; // end of candidates: the protocol has no message for it
    if (S.rt.offerSent) safeSend('ice_candidate', { candidate: candidate.candidate });
    else S.rt.candidates.push(candidate.candidate);
  };
  pc.onconnectionstatechange = () => {
    S.media = pc.connectionState;
    if (pc.connectionState === 'connected') {
      clearTimeout(S.rt.mediaTimer);
      note('Media connected');
    } else if (pc.connectionState === 'failed') {
      mediaFailed('the connection failed (ICE or DTLS)');
    }
    render();
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const sdp = pc.localDescription.sdp;
  if (sdp.length > MAX_MESSAGE_BYTES - 200) throw new Error(`the offer is ${sdp.length} bytes, over the service's frame limit`);
  send('offer', { sdp });
  S.rt.offerSent = true;
  for (const c of S.rt.candidates.splice(0)) safeSend('ice_candidate', { candidate: c });
  S.media = pc.connectionState;
  S.rt.mediaTimer = setTimeout(() => {
    if (S.rt.pc === pc && pc.connectionState !== 'connected') mediaFailed(`it did not come up within ${MEDIA_TIMEOUT_MS / 1000} s`);
  }, MEDIA_TIMEOUT_MS);
  S.rt.statsTimer = setInterval(pollSlotStats, 1000);
  await updateSenders();
}

/** Like the Rust engine on a media failure: every call hangs up with 503/1, signaling stays. */
function mediaFailed(why) {
  note(`The media connection to the call service failed: ${why}`, true);
  for (const call of activeCalls()) {
    safeSend('hang_up', { call_id: call.id });
    endCall(call, { code: 503, subcode: 1 });
  }
}

function safeSend(type, fields) {
  try {
    send(type, fields);
  } catch (e) {
    note(`Could not send ${type}: ${e.message}`, true);
  }
}

/** Which tracks go out: the microphone while a call is connected (silence when every such call
 * is muted), the camera / screen while some live call has that stream on. */
async function updateSenders() {
  const { tx, local } = S.rt;
  if (!tx) return;
  const connected = [...S.calls.values()].filter((c) => c.state === 'connected');
  const live = activeCalls();
  if (local.mic) local.mic.enabled = connected.length > 0 && !connected.every((c) => c.muted);
  const want = [
    [tx.mic, connected.length ? local.mic : null],
    [tx.camera, live.some((c) => c.video) ? local.camera : null],
    [tx.screen, live.some((c) => c.screen) ? local.screen : null],
  ];
  for (const [t, track] of want) {
    if (t.sender.track !== track) await t.sender.replaceTrack(track);
  }
  $('local-tile').classList.toggle('hidden', !(live.some((c) => c.video) && local.camera));
}

// ---------------------------------------------------------------------------------------------
// Server messages

function newCall(id, state, direction) {
  return { id, state, direction, caller: null, muted: false, video: false, screen: false,
           participants: new Map(), dominant: [], endReason: null };
}

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

function endCall(call, reason) {
  call.state = 'disconnected';
  call.endReason = reason;
  call.video = call.screen = false;
  for (const [key, sub] of S.subs) if (sub.callId === call.id) dropSub(key);
  // Keep the last few ended calls on screen with their reasons.
  const ended = [...S.calls.values()].filter((c) => c.state === 'disconnected');
  for (const old of ended.slice(0, Math.max(0, ended.length - 5))) S.calls.delete(old.id);
}

function dropSub(key) {
  const sub = S.subs.get(key);
  S.subs.delete(key);
  if (sub) clearSlot(key, sub);
}

function clearSlot(key, sub) {
  if (sub.slot !== null && S.slots[sub.slot] === key) {
    S.slots[sub.slot] = null;
    S.slotStats[sub.slot] = null;
  }
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

/** Each routed video slot's figures, counted from when its current stream was routed there
 * (a slot's receiver counts on across the streams it carries). */
async function pollSlotStats() {
  const tx = S.rt.tx;
  if (!tx) return;
  await Promise.all(S.slots.map(async (key, slot) => {
    if (!key) return;
    try {
      (await tx.video[slot].receiver.getStats()).forEach((r) => {
        if (r.type !== 'inbound-rtp') return;
        S.rt.slotRaw[slot] = r.framesDecoded || 0;
        if (S.slots[slot] !== key) return;
        S.slotStats[slot] = { framesDecoded: Math.max(0, (r.framesDecoded || 0) - S.rt.slotBase[slot]),
                              width: r.frameWidth || 0, height: r.frameHeight || 0 };
      });
    } catch { /* the connection closed meanwhile */ }
  }));
  render();
}

// ---------------------------------------------------------------------------------------------
// Requests

function activeCalls() {
  return [...S.calls.values()].filter((c) => !['incoming', 'disconnected'].includes(c.state));
}

/** The call a request is about: the one named, else the latest live one. */
function pickCall(callId) {
  const call = callId ? S.calls.get(callId) : activeCalls().at(-1);
  if (!call) throw new Error(callId ? `no call ${callId}` : 'no call in progress');
  return call;
}

async function place(id, message, withVideo, direction) {
  if (S.phase !== 'signed_in') throw new Error('sign in first');
  if (withVideo && !S.rt.local.camera) throw new Error('no camera: video cannot go on');
  if (S.calls.get(id)?.state === 'disconnected') S.calls.delete(id);
  S.calls.set(id, newCall(id, 'connecting', direction));
  S.pendingPlace = id;
  send(message.type, { call_id: id, ...message.fields });
  if (withVideo) await setVideo(true, id);
  render();
  return id;
}

async function startCall(userId, withVideo = false) {
  const targets = [toRawId(userId)];
  return place(randomCallId(), { type: 'start_call', fields: { targets } }, withVideo, 'outgoing');
}

async function joinGroup(id, withVideo = false) {
  const callId = String(id || newGroupId()).trim();
  if (!isGuid(callId)) throw new Error(`group call ids are GUIDs; "${callId}" is not one`);
  return place(callId, { type: 'join_group', fields: {} }, withVideo, 'group');
}

async function acceptIncoming(withVideo = false, callId) {
  const c = callId ? S.calls.get(callId) : [...S.calls.values()].find((x) => x.state === 'incoming');
  if (!c || c.state !== 'incoming') throw new Error('no incoming call');
  send('accept_call', { call_id: c.id });
  c.state = 'connecting';
  if (withVideo) await setVideo(true, c.id);
  render();
  return c.id;
}

function declineIncoming(callId) {
  const c = callId ? S.calls.get(callId) : [...S.calls.values()].find((x) => x.state === 'incoming');
  if (!c || c.state !== 'incoming') throw new Error('no incoming call');
  send('reject_call', { call_id: c.id });
  c.state = 'disconnecting';
  render();
  return c.id;
}

async function setMuted(muted, callId) {
  const c = pickCall(callId);
  c.muted = !!muted;
  send('set_muted', { call_id: c.id, muted: c.muted });
  await updateSenders();
  render();
}

async function setVideo(on, callId) {
  const c = pickCall(callId);
  if (on && !S.rt.local.camera) throw new Error('no camera: video cannot go on');
  c.video = !!on;
  await updateSenders();
  send('set_video', { call_id: c.id, media_type: 'video', on: c.video });
  render();
}

async function setScreenShare(on, callId, stopped) {
  const c = pickCall(callId);
  const L = S.rt.local;
  if (on && !L.screen) {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    const track = stream.getVideoTracks()[0];
    track.contentHint = 'detail';
    track.onended = () => {
      // The shared window went away: every call sharing it stops, telling the others why.
      for (const x of activeCalls().filter((y) => y.screen)) setScreenShare(false, x.id, 'source_closed').catch(() => {});
    };
    L.screen = track;
  }
  c.screen = !!on;
  await updateSenders();
  const fields = { call_id: c.id, media_type: 'screen_sharing', on: c.screen };
  if (!on && stopped) fields.stopped = stopped;
  send('set_video', fields);
  if (!activeCalls().some((x) => x.screen) && L.screen) {
    L.screen.onended = null;
    L.screen.stop();
    L.screen = null;
  }
  render();
}

function hangUp(callId) {
  const c = pickCall(callId);
  send('hang_up', { call_id: c.id });
  c.state = 'disconnecting';
  render();
  return c.id;
}

async function stats() {
  const pc = S.rt.pc;
  const fields = { inbound: ['bytesReceived', 'packetsReceived', 'packetsLost', 'framesDecoded', 'totalAudioEnergy'],
                   outbound: ['bytesSent', 'packetsSent', 'framesEncoded'] };
  const zero = (dir) => Object.fromEntries([['streams', 0], ...fields[dir].map((f) => [f, 0]), ['codecs', []]]);
  const out = { connectionState: pc?.connectionState || 'none', iceConnectionState: pc?.iceConnectionState || 'none',
                inbound: { audio: zero('inbound'), video: zero('inbound') },
                outbound: { audio: zero('outbound'), video: zero('outbound') } };
  if (!pc) return out;
  const report = await pc.getStats();
  const codecs = new Map();
  report.forEach((r) => { if (r.type === 'codec') codecs.set(r.id, r.mimeType); });
  report.forEach((r) => {
    const dir = { 'inbound-rtp': 'inbound', 'outbound-rtp': 'outbound' }[r.type];
    const s = dir && out[dir][r.kind || r.mediaType];
    if (!s) return;
    s.streams += 1;
    for (const f of fields[dir]) s[f] += r[f] || 0;
    const codec = codecs.get(r.codecId);
    if (codec && !s.codecs.includes(codec)) s.codecs.push(codec);
  });
  return out;
}

function snapshot() {
  return {
    signedIn: S.phase === 'signed_in',
    user: S.user,
    media: S.media,
    error: S.error,
    calls: [...S.calls.values()].map((c) => ({
      id: c.id, state: c.state, direction: c.direction, muted: c.muted, video: c.video, screenSharing: c.screen,
      endReason: c.endReason && { code: c.endReason.code, subcode: c.endReason.subcode, text: describeReason(c.endReason) },
      dominantSpeakers: c.dominant,
      participants: [...c.participants.values()].map((p) => ({
        id: p.id, name: p.display_name, state: p.state, muted: p.is_muted, speaking: p.is_speaking, role: p.role,
        streams: (p.streams || []).map((s) => ({ mediaType: s.media_type, available: s.is_available, stopped: s.stopped || null })),
      })),
    })),
    remoteVideos: S.slots.flatMap((key, slot) => {
      const sub = key && S.subs.get(key);
      if (!sub) return [];
      const el = S.rt.videoEls[slot];
      const st = S.slotStats[slot] || {};
      return [{ callId: sub.callId, participant: sub.participant, mediaType: sub.mediaType, slot,
                width: el?.videoWidth || st.width || 0, height: el?.videoHeight || st.height || 0,
                framesDecoded: st.framesDecoded || 0 }];
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

function render() {
  const signedIn = S.phase === 'signed_in';
  $('status').textContent = signedIn
    ? `Signed in as ${S.displayName} (${S.user}) · media: ${S.media}`
    : S.phase === 'signing_in' ? 'Signing in…' : 'Not signed in';
  $('banner').textContent = S.error || '';
  $('signin').classList.toggle('hidden', signedIn);
  $('signin-button').disabled = S.phase !== 'signed_out';
  $('place').classList.toggle('hidden', !signedIn);
  $('media').classList.toggle('hidden', !signedIn);
  $('enable-sound').classList.toggle('hidden', !S.needsSoundClick);
  // Replaced only when it changed, so a click is not lost to a re-render.
  const calls = [...S.calls.values()].reverse().map(renderCall).join('');
  if (calls !== S.rt.callsHtml) $('calls').innerHTML = S.rt.callsHtml = calls;
  S.rt.videoEls.forEach((el, slot) => {
    const sub = S.slots[slot] && S.subs.get(S.slots[slot]);
    el.parentElement.classList.toggle('hidden', !sub);
    if (!sub) return;
    const name = S.calls.get(sub.callId)?.participants.get(sub.participant)?.display_name || sub.participant;
    const st = S.slotStats[slot];
    el.nextElementSibling.textContent = `${name} · ${MEDIA_NAMES[sub.mediaType]}${st ? ` · ${st.width}×${st.height}` : ''}`;
  });
  const log = $('log');
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = S.log.join('\n');
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function renderCall(c) {
  const others = [...c.participants.values()];
  const remoteHold = c.state === 'connected' && c.direction !== 'group' && others.length === 1 && others[0].state === 'hold';
  const state = CALL_STATES[remoteHold ? 'remote_hold' : c.state] || c.state;
  const button = (action, label, cls = '') => `<button type="button" class="${cls}" data-action="${action}" data-call="${esc(c.id)}">${label}</button>`;
  let actions;
  if (c.state === 'incoming') {
    const withVideo = S.rt.local.camera ? button('accept-video', 'Accept with video') : '';
    actions = `${button('accept', 'Accept')} ${withVideo} ${button('decline', 'Decline', 'danger')}`;
  } else if (c.state === 'disconnected') {
    actions = button('dismiss', 'Dismiss', 'plain');
  } else {
    actions = [
      button('mute', c.muted ? 'Unmute' : 'Mute', 'plain'),
      S.rt.local.camera ? button('video', c.video ? 'Video off' : 'Video on', 'plain') : '',
      navigator.mediaDevices?.getDisplayMedia ? button('screen', c.screen ? 'Stop sharing' : 'Share screen', 'plain') : '',
      button('hang-up', 'Hang up', 'danger'),
    ].join(' ');
  }
  const title = c.state === 'incoming' ? `${esc(c.caller?.display_name)} is calling` : `Call <code>${esc(c.id)}</code>`;
  const rows = others.map((p) => {
    const video = (p.streams || []).filter((s) => s.is_available).map((s) => MEDIA_NAMES[s.media_type]).join(', ');
    return `<tr><td>${esc(p.display_name)} <span class="muted">${esc(p.id)}</span></td>
      <td>${esc(PARTICIPANT_STATES[p.state] || p.state)}</td><td>${p.is_muted ? 'muted' : ''}</td>
      <td class="speaking">${p.is_speaking ? 'speaking' : ''}</td><td>${esc(video)}</td></tr>`;
  }).join('');
  const roster = c.state === 'incoming' || !others.length ? ''
    : `<table><tr><th>Participant</th><th>State</th><th>Mic</th><th></th><th>Video</th></tr>${rows}</table>`;
  const reason = c.endReason ? ` — <span class="${c.endReason.code ? 'error' : 'muted'}">${esc(describeReason(c.endReason))}</span>` : '';
  return `<div class="call ${c.state === 'incoming' ? 'incoming' : ''}"><div class="row"><strong>${title}</strong>
    <span>${esc(state)}${reason}</span></div><div class="row">${actions}</div>${roster}</div>`;
}

// ---------------------------------------------------------------------------------------------
// Wiring

function guard(action) {
  Promise.resolve().then(action).catch((e) => note(e.message, true));
}

function init() {
  const videos = $('videos');
  for (let slot = 0; slot < VIDEO_SLOTS; slot++) {
    const tile = document.createElement('div');
    tile.className = 'tile hidden';
    tile.innerHTML = '<video autoplay playsinline muted></video><div class="label"></div>';
    videos.append(tile);
    S.rt.videoEls.push(tile.firstElementChild);
  }
  for (let slot = 0; slot < AUDIO_SLOTS; slot++) {
    const el = document.createElement('audio');
    el.autoplay = true;
    el.muted = false;
    $('audio-elements').append(el);
    S.rt.audioEls.push(el);
  }
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('user').value, $('name').value, $('token').value).catch(() => {});
  });
  document.addEventListener('click', (e) => {
    const b = e.target.closest('[data-action]');
    if (!b) return;
    const id = b.dataset.call;
    const withVideo = $('with-video').checked;
    S.error = null;
    const actions = {
      'sign-out': () => signOut(),
      call: () => startCall($('callee').value, withVideo),
      'new-group': () => { $('group').value = newGroupId(); },
      join: () => joinGroup($('group').value, withVideo),
      accept: () => acceptIncoming(false, id),
      'accept-video': () => acceptIncoming(true, id),
      decline: () => declineIncoming(id),
      mute: () => setMuted(!S.calls.get(id).muted, id),
      video: () => setVideo(!S.calls.get(id).video, id),
      screen: () => setScreenShare(!S.calls.get(id).screen, id),
      'hang-up': () => hangUp(id),
      dismiss: () => { S.calls.delete(id); render(); },
      'enable-sound': () => {
        S.needsSoundClick = false;
        for (const el of [...S.rt.audioEls, ...S.rt.videoEls]) el.play().catch(() => {});
        render();
      },
    };
    if (actions[b.dataset.action]) guard(actions[b.dataset.action]);
  });
  render();
}

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
