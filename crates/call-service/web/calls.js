/*
 * The call actions a person (ui.js) or a test (window.bc) takes, and the state as the automation
 * hook reports it. Each throws (or rejects) with a sentence when it does not fit the state.
 */
import { describeReason, isGuid, newGroupId, randomCallId, toRawId } from './protocol.js';
import { updateSenders } from './media.js';
import { S, activeCalls, newCall, render, send } from './state.js';

/** The call a request is about: the one named, else the latest live one. */
function pickCall(callId) {
  const call = callId ? S.calls.get(callId) : activeCalls().at(-1);
  if (!call) throw new Error(callId ? `no call ${callId}` : 'no call in progress');
  return call;
}

/** The incoming call a request answers: the one named, else the first one ringing here. */
function pickIncoming(callId) {
  const c = callId ? S.calls.get(callId) : [...S.calls.values()].find((x) => x.state === 'incoming');
  if (!c || c.state !== 'incoming') throw new Error('no incoming call');
  return c;
}

/** Starts a call (start_call or join_group) and records it as connecting. */
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

export async function startCall(userId, withVideo = false) {
  const targets = [toRawId(userId)];
  return place(randomCallId(), { type: 'start_call', fields: { targets } }, withVideo, 'outgoing');
}

export async function joinGroup(id, withVideo = false) {
  const callId = String(id || newGroupId()).trim();
  if (!isGuid(callId)) throw new Error(`group call ids are GUIDs; "${callId}" is not one`);
  return place(callId, { type: 'join_group', fields: {} }, withVideo, 'group');
}

export async function acceptIncoming(withVideo = false, callId) {
  const c = pickIncoming(callId);
  send('accept_call', { call_id: c.id });
  c.state = 'connecting';
  if (withVideo) await setVideo(true, c.id);
  render();
  return c.id;
}

export function declineIncoming(callId) {
  const c = pickIncoming(callId);
  send('reject_call', { call_id: c.id });
  c.state = 'disconnecting';
  render();
  return c.id;
}

export async function setMuted(muted, callId) {
  const c = pickCall(callId);
  c.muted = !!muted;
  send('set_muted', { call_id: c.id, muted: c.muted });
  await updateSenders();
  render();
}

export async function setVideo(on, callId) {
  const c = pickCall(callId);
  if (on && !S.rt.local.camera) throw new Error('no camera: video cannot go on');
  c.video = !!on;
  await updateSenders();
  send('set_video', { call_id: c.id, media_type: 'video', on: c.video });
  render();
}

export async function setScreenShare(on, callId, stopped) {
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

export function hangUp(callId) {
  const c = pickCall(callId);
  send('hang_up', { call_id: c.id });
  c.state = 'disconnecting';
  render();
  return c.id;
}

/** The page's state as plain data (the automation hook's `state`). */
export function snapshot() {
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
