// JsSIP browser peer for exotel-voice interop tests (a second far end beside SIP.js).
//
// One page = one phone: a JsSIP 3.13.8 UA over WS/WSS and one call at a time. JsSIP puts a
// hold in an UPDATE when asked (`session.hold({useUpdate: true})`, RFC 3311), which SIP.js
// never does. tests/rig/jssip.py serves the page and drives it through `window.peer` (the
// same calling convention as the SIP.js page: Playwright's page.evaluate, events pushed back
// through the `__peerEvent` binding and kept in `window.peer.events`).
//
// Built by `npm run build:jssip` into dist/jssip-peer.js (the Makefile's npm step).

import JsSIP from "jssip";

const peer = {
  events: [],
  ua: undefined,
  session: undefined,
  toneHz: undefined,
  toneGain: 0.3,
  sessionTimers: false,
  sessionTimersExpires: undefined,
  sipTrace: [],
  audioContext: undefined,
  analyser: undefined,
  analysedTrackId: undefined,
  remoteAudio: undefined,
};

function emit(type, data) {
  const now = performance.now();
  const event = Object.assign({ type, t: now, wall: performance.timeOrigin + now }, data || {});
  peer.events.push(event);
  if (typeof window.__peerEvent === "function") {
    window.__peerEvent(event).catch(() => undefined);
  }
  return event;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function audioContext() {
  if (!peer.audioContext) peer.audioContext = new AudioContext({ sampleRate: 48000 });
  if (peer.audioContext.state === "suspended") peer.audioContext.resume().catch(() => undefined);
  return peer.audioContext;
}

async function localStream() {
  if (peer.toneHz !== undefined && peer.toneHz !== null) {
    const ctx = audioContext();
    const osc = ctx.createOscillator();
    osc.type = "sine";
    osc.frequency.value = peer.toneHz;
    const gain = ctx.createGain();
    gain.gain.value = peer.toneGain;
    const dest = ctx.createMediaStreamDestination();
    osc.connect(gain).connect(dest);
    osc.start();
    return dest.stream;
  }
  return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
}

function peerConnection() {
  return peer.session && peer.session.connection;
}

function remoteTrack() {
  const pc = peerConnection();
  if (!pc) return null;
  const receiver = pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
  return receiver ? receiver.track : null;
}

function ensureAnalyser() {
  const track = remoteTrack();
  if (!track) throw new Error("no remote audio track");
  const stream = new MediaStream([track]);
  // Chromium feeds a remote WebRTC track into WebAudio only while an element plays it.
  if (!peer.remoteAudio) {
    peer.remoteAudio = document.createElement("audio");
    peer.remoteAudio.autoplay = true;
    document.body.appendChild(peer.remoteAudio);
  }
  if (peer.analysedTrackId !== track.id) {
    peer.remoteAudio.srcObject = stream;
    peer.remoteAudio.play().catch(() => undefined);
    const ctx = audioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    ctx.createMediaStreamSource(stream).connect(analyser);
    peer.analyser = analyser;
    peer.analysedTrackId = track.id;
  }
  return peer.analyser;
}

// The dominant frequency and RMS level of `durationMs` of the remote audio.
async function receivedTone(durationMs) {
  const analyser = ensureAnalyser();
  const ctx = audioContext();
  const bins = analyser.frequencyBinCount;
  const power = new Float64Array(bins);
  const db = new Float32Array(bins);
  const time = new Float32Array(analyser.fftSize);
  let frames = 0;
  let sumSquares = 0;
  let samples = 0;
  let peak = 0;
  const end = performance.now() + durationMs;
  while (performance.now() < end) {
    await sleep(50);
    analyser.getFloatFrequencyData(db);
    for (let i = 0; i < bins; i++) power[i] += Number.isFinite(db[i]) ? Math.pow(10, db[i] / 10) : 0;
    analyser.getFloatTimeDomainData(time);
    for (let i = 0; i < time.length; i++) {
      sumSquares += time[i] * time[i];
      peak = Math.max(peak, Math.abs(time[i]));
    }
    samples += time.length;
    frames += 1;
  }
  const binHz = ctx.sampleRate / analyser.fftSize;
  const first = Math.max(1, Math.ceil(20 / binHz));
  let best = first;
  for (let i = first; i < bins; i++) if (power[i] > power[best]) best = i;
  let total = 0;
  for (let i = first; i < bins; i++) total += power[i];
  const rms = samples ? Math.sqrt(sumSquares / samples) : 0;
  return {
    frequency: best * binHz,
    rms,
    peak,
    level_db: rms > 0 ? 20 * Math.log10(rms) : null,
    purity: total > 0 ? power.slice(best - 2, best + 3).reduce((x, y) => x + y, 0) / total : 0,
    frames,
  };
}

async function mediaStats() {
  const pc = peerConnection();
  if (!pc) return null;
  const report = await pc.getStats();
  const out = { inbound: null, outbound: null, ice_state: pc.iceConnectionState };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.inbound = { packetsReceived: s.packetsReceived, audioLevel: s.audioLevel,
                      totalAudioEnergy: s.totalAudioEnergy };
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.outbound = { packetsSent: s.packetsSent };
    }
  });
  return out;
}

function requireSession() {
  if (!peer.session) throw new Error("no call");
  return peer.session;
}

function watchSession(session, originator) {
  peer.session = session;
  peer.analysedTrackId = undefined;
  session.on("progress", (e) => emit("progress", { status: e.response ? e.response.status_code : null }));
  session.on("accepted", () => emit("answered", {}));
  session.on("confirmed", () => emit("established", { originator }));
  session.on("hold", (e) => emit("hold", { originator: e.originator }));
  session.on("unhold", (e) => emit("unhold", { originator: e.originator }));
  session.on("update", (e) => emit("update", { originator: e.originator }));
  session.on("reinvite", (e) => emit("reinvite", { originator: "remote", has_body: !!(e.request && e.request.body) }));
  session.on("sdp", (e) => emit("sdp", { originator: e.originator, type: e.type }));
  const ended = (kind) => (e) => {
    if (peer.session === session) peer.session = undefined;
    emit("terminated", { kind, by: e.originator, cause: e.cause,
                         status: e.message && e.message.status_code ? e.message.status_code : null });
  };
  session.on("ended", ended("ended"));
  session.on("failed", ended("failed"));
}

peer.configure = (options) => {
  if (options && "toneHz" in options) peer.toneHz = options.toneHz;
  if (options && "sessionTimers" in options) peer.sessionTimers = !!options.sessionTimers;
  if (options && "sessionTimersExpires" in options) {
    peer.sessionTimersExpires = options.sessionTimersExpires === null ? undefined : options.sessionTimersExpires;
  }
  return true;
};

// Keep every SIP message the page sends and receives, as text (`peer.takeSipTrace()`), so a
// test can check what JsSIP put on the wire and what it got. JsSIP's Transport sets the
// socket's `ondata` when it connects; the setter wraps it.
function traceSocket(socket) {
  const send = socket.send.bind(socket);
  socket.send = (message) => {
    if (typeof message === "string" && message.trim()) peer.sipTrace.push({ dir: "out", text: message, wall: Date.now() });
    return send(message);
  };
  let ondata;
  Object.defineProperty(socket, "ondata", {
    configurable: true,
    get: () => ondata,
    set: (fn) => {
      ondata = typeof fn === "function" ? (data) => {
        if (typeof data === "string" && data.trim()) peer.sipTrace.push({ dir: "in", text: data, wall: Date.now() });
        fn(data);
      } : fn;
    },
  });
}

peer.takeSipTrace = () => {
  const out = peer.sipTrace;
  peer.sipTrace = [];
  return out;
};

// Options of a call or answer that set JsSIP's session interval (RFC 4028), if configured.
function timerOptions() {
  return peer.sessionTimersExpires === undefined ? {} : { sessionTimersExpires: peer.sessionTimersExpires };
}

peer.register = (wsUrl, aor, authUser, password, displayName) => {
  JsSIP.debug.disable("JsSIP:*");
  const socket = new JsSIP.WebSocketInterface(wsUrl);
  traceSocket(socket);
  const ua = new JsSIP.UA({
    sockets: [socket],
    uri: aor,
    authorization_user: authUser,
    password,
    display_name: displayName || undefined,
    register: true,
    register_expires: 300,
    session_timers: peer.sessionTimers,
  });
  peer.ua = ua;
  ua.on("registered", () => emit("registered", {}));
  ua.on("unregistered", () => emit("unregistered", {}));
  ua.on("registrationFailed", (e) => emit("register_failed", { cause: e.cause }));
  ua.on("disconnected", () => emit("disconnected", {}));
  ua.on("newRTCSession", (e) => {
    const session = e.session;
    watchSession(session, e.originator);
    if (e.originator === "remote") {
      emit("incoming", { call_id: e.request.call_id, from: e.request.from.uri.toString() });
    }
  });
  ua.start();
  return true;
};

peer.call = async (target) => {
  const stream = await localStream();
  const session = peer.ua.call(target, {
    mediaStream: stream,
    pcConfig: { iceServers: [] },
    ...timerOptions(),
  });
  return { call_id: session.request ? session.request.call_id : null };
};

peer.answer = async () => {
  const session = requireSession();
  const stream = await localStream();
  session.answer({ mediaStream: stream, pcConfig: { iceServers: [] }, ...timerOptions() });
  return true;
};

// Hold or resume with the offer in an UPDATE (RFC 3311); resolves with the outcome:
// JsSIP ends the call when the UPDATE fails.
function holdOrResume(hold) {
  const session = requireSession();
  return new Promise((resolve) => {
    const done = () => resolve({ ok: true });
    const onEnd = (e) => resolve({ ok: false, cause: e.cause });
    session.once("ended", onEnd);
    session.once("failed", onEnd);
    const started = hold ? session.hold({ useUpdate: true }, done)
                         : session.unhold({ useUpdate: true }, done);
    if (!started) resolve({ ok: false, cause: "not allowed in this state" });
  });
}

peer.holdUpdate = () => holdOrResume(true);
peer.unholdUpdate = () => holdOrResume(false);

peer.hangup = () => {
  const session = requireSession();
  session.terminate();
  return true;
};

peer.receivedTone = (durationMs) => receivedTone(durationMs);
peer.mediaStats = () => mediaStats();

peer.stop = () => {
  if (peer.session) {
    try { peer.session.terminate(); } catch (e) { void e; }
  }
  if (peer.ua) peer.ua.stop();
  return true;
};

window.peer = peer;
emit("ready", { jssip: JsSIP.version });
