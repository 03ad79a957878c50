/*
 * The devices and the one RTCPeerConnection, offering the same media lines as the Rust client
 * (crates/call-media/src/connection/mod.rs).
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
import { AUDIO_SLOTS, VIDEO_SLOTS } from './protocol.js';
import { $, S, activeCalls, endCall, note, render, safeSend, send } from './state.js';

const MEDIA_TIMEOUT_MS = 20000;
const CAMERA = { audio: true, video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 30 } } };

/** Captures microphone and camera once; falls back to the microphone alone, then to nothing. */
export async function openDevices() {
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

/** Closes the peer connection and forgets everything routed over it. */
export function closeMedia() {
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

/** Offers every line (see the header), trickles the candidates, then keeps the senders in step. */
export async function startMedia() {
  // `?codecs=browser` offers the browser's own codec order (VP8 first in Chromium): the service
  // still answers H.264 and Opus, the only codecs it forwards.
  const ownOrder = new URLSearchParams(location.search).get('codecs') === 'browser';
  const prefs = ownOrder ? null : codecPreferences();
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
  } else if (!ownOrder) {
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
export function mediaFailed(why) {
  note(`The media connection to the call service failed: ${why}`, true);
  for (const call of activeCalls()) {
    safeSend('hang_up', { call_id: call.id });
    endCall(call, { code: 503, subcode: 1 });
  }
}

/** Which tracks go out: the microphone while a call is connected (silence when every such call
 * is muted), the camera / screen while some live call has that stream on. */
export async function updateSenders() {
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

/** The connection's counters summed per direction and kind (the automation hook's `stats`). */
export async function stats() {
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
