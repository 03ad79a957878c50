/*
 * The page: rendering it from `S`, and wiring its controls to the call actions.
 */
import { AUDIO_SLOTS, CALL_STATES, MEDIA_NAMES, PARTICIPANT_STATES, VIDEO_SLOTS, describeReason, newGroupId } from './protocol.js';
import { acceptIncoming, declineIncoming, hangUp, joinGroup, setMuted, setScreenShare, setVideo, startCall } from './calls.js';
import { signIn, signOut } from './session.js';
import { $, S, note, setRenderer } from './state.js';

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---------------------------------------------------------------------------------------------
// Rendering

/** Draws the whole page from `S` (state.js's `render` calls this). */
function renderPage() {
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

/** One call: its state, its actions and, once others are in it, its roster. */
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

/** Runs a control's action; what it throws (or rejects with) goes to the banner. */
function guard(action) {
  Promise.resolve().then(action).catch((e) => note(e.message, true));
}

/** Adds the receive elements, installs the renderer, wires the controls and draws the page. */
export function init() {
  setRenderer(renderPage);
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
      dismiss: () => { S.calls.delete(id); renderPage(); },
      'enable-sound': () => {
        S.needsSoundClick = false;
        for (const el of [...S.rt.audioEls, ...S.rt.videoEls]) el.play().catch(() => {});
        renderPage();
      },
    };
    if (actions[b.dataset.action]) guard(actions[b.dataset.action]);
  });
  renderPage();
}
