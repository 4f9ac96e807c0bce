// Browser SIP peer for exotel-voice interop tests.
//
// One page = one phone: a SIP.js 0.21.2 UserAgent over WS/WSS plus a single call at a time.
// tests/rig/browser.py drives it through `window.peer` with Playwright's page.evaluate and
// receives every event the page records through the `__peerEvent` binding (the same events
// also stay in `window.peer.events` for debugging).
//
// This file is the whole harness on purpose: the Makefile rebuilds dist/ when package.json or
// entry.js change, so keeping the harness here means no edit can leave dist/ stale.

import {
  Invitation,
  Inviter,
  Registerer,
  RegistererState,
  SessionState,
  UserAgent,
  Web,
} from "sip.js";

const peer = {
  events: [],
  ua: undefined,
  registerer: undefined,
  session: undefined,
  toneHz: undefined, // when set, the local track is an OscillatorNode at this frequency
  toneGain: 0.3,
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
    // Fire and forget; the binding is a Python callback.
    window.__peerEvent(event).catch(() => undefined);
  }
  return event;
}

// ---------------------------------------------------------------------------------------------
// Media

function audioContext() {
  if (!peer.audioContext) {
    peer.audioContext = new AudioContext({ sampleRate: 48000 });
  }
  if (peer.audioContext.state === "suspended") {
    peer.audioContext.resume().catch(() => undefined);
  }
  return peer.audioContext;
}

// The local microphone: a pure sine from an OscillatorNode when a tone was configured (so each
// page sends its own known frequency), otherwise Chromium's fake capture device (a periodic beep,
// or the WAV given with --use-file-for-fake-audio-capture).
async function mediaStreamFactory(constraints) {
  if (peer.toneHz !== undefined) {
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

function sdh() {
  return peer.session && peer.session.sessionDescriptionHandler;
}

function peerConnection() {
  const handler = sdh();
  return handler && handler.peerConnection;
}

function attachRemoteAudio() {
  const handler = sdh();
  if (!handler || !handler.remoteMediaStream) return;
  // Chromium only feeds a remote WebRTC track into WebAudio while the stream is also attached to
  // a media element, so keep a (muted) <audio> playing it.
  if (!peer.remoteAudio) {
    peer.remoteAudio = document.createElement("audio");
    peer.remoteAudio.muted = false;
    peer.remoteAudio.autoplay = true;
    document.body.appendChild(peer.remoteAudio);
  }
  if (peer.remoteAudio.srcObject !== handler.remoteMediaStream) {
    peer.remoteAudio.srcObject = handler.remoteMediaStream;
    peer.remoteAudio.play().catch(() => undefined);
  }
}

function ensureAnalyser() {
  attachRemoteAudio();
  const handler = sdh();
  const stream = handler && handler.remoteMediaStream;
  const track = stream && stream.getAudioTracks()[0];
  if (!track) throw new Error("no remote audio track");
  if (peer.analysedTrackId !== track.id) {
    const ctx = audioContext();
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 8192;
    analyser.smoothingTimeConstant = 0;
    source.connect(analyser);
    peer.analyser = analyser;
    peer.analysedTrackId = track.id;
  }
  return peer.analyser;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Average the power spectrum of the remote audio over `durationMs` and report the dominant
// frequency (parabolic interpolation between FFT bins) and the RMS level of the time signal.
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
    for (let i = 0; i < bins; i++) {
      power[i] += Number.isFinite(db[i]) ? Math.pow(10, db[i] / 10) : 0;
    }
    analyser.getFloatTimeDomainData(time);
    for (let i = 0; i < time.length; i++) {
      sumSquares += time[i] * time[i];
      peak = Math.max(peak, Math.abs(time[i]));
    }
    samples += time.length;
    frames += 1;
  }
  // Skip DC and the lowest bins (below ~20 Hz).
  const binHz = ctx.sampleRate / analyser.fftSize;
  const first = Math.max(1, Math.ceil(20 / binHz));
  let best = first;
  for (let i = first; i < bins; i++) if (power[i] > power[best]) best = i;
  let offset = 0;
  if (best > first && best < bins - 1) {
    const a = Math.log(power[best - 1] || 1e-30);
    const b = Math.log(power[best] || 1e-30);
    const c = Math.log(power[best + 1] || 1e-30);
    const denom = a - 2 * b + c;
    if (denom !== 0) offset = (0.5 * (a - c)) / denom;
  }
  let total = 0;
  for (let i = first; i < bins; i++) total += power[i];
  const rms = samples ? Math.sqrt(sumSquares / samples) : 0;
  return {
    frequency: (best + offset) * binHz,
    rms,
    peak,
    level_db: rms > 0 ? 20 * Math.log10(rms) : -Infinity,
    // Share of the spectrum's power within +-2 bins of the peak: near 1 for a pure tone.
    purity: total > 0 ? power.slice(best - 2, best + 3).reduce((x, y) => x + y, 0) / total : 0,
    frames,
    context_state: ctx.state,
  };
}

async function mediaStats() {
  const pc = peerConnection();
  if (!pc) return null;
  const report = await pc.getStats();
  const out = { inbound: null, outbound: null, codec: null, ice_state: pc.iceConnectionState };
  const codecs = {};
  report.forEach((s) => {
    if (s.type === "codec") codecs[s.id] = s;
  });
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.inbound = {
        packetsReceived: s.packetsReceived,
        packetsLost: s.packetsLost,
        bytesReceived: s.bytesReceived,
        audioLevel: s.audioLevel,
        totalAudioEnergy: s.totalAudioEnergy,
        totalSamplesDuration: s.totalSamplesDuration,
        jitter: s.jitter,
      };
      if (s.codecId && codecs[s.codecId]) out.codec = codecs[s.codecId].mimeType;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      out.outbound = { packetsSent: s.packetsSent, bytesSent: s.bytesSent };
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// SIP helpers

function headersOf(message) {
  const out = {};
  for (const name of Object.keys(message.headers)) {
    out[name] = message.headers[name].map((h) => h.raw);
  }
  return out;
}

// Direction of the first audio m-section (falling back to the session level), as in RFC 3264.
function sdpDirection(sdp) {
  if (!sdp) return null;
  const lines = sdp.split(/\r?\n/);
  let sessionDir = "sendrecv";
  let inAudio = false;
  let seenMedia = false;
  let audioDir = null;
  for (const line of lines) {
    if (line.startsWith("m=")) {
      if (inAudio) break;
      seenMedia = true;
      inAudio = line.startsWith("m=audio");
      continue;
    }
    const m = /^a=(sendrecv|sendonly|recvonly|inactive)\s*$/.exec(line);
    if (!m) continue;
    if (!seenMedia) sessionDir = m[1];
    else if (inAudio) audioDir = m[1];
  }
  return audioDir || sessionDir;
}

function bodyOf(message) {
  return message && typeof message.body === "string" ? message.body : "";
}

function parseDtmfRelay(body) {
  const signal = /^\s*Signal\s*=\s*(\S+)/im.exec(body);
  const duration = /^\s*Duration\s*=\s*(\d+)/im.exec(body);
  return {
    digit: signal ? signal[1] : null,
    duration: duration ? Number(duration[1]) : null,
  };
}

// Who ended each call ("local" / "remote"); the first to decide wins.
const endedBy = new WeakMap();
function setEnded(session, who) {
  if (session && !endedBy.has(session)) endedBy.set(session, who);
}

function requireSession() {
  if (!peer.session) throw new Error("no call");
  return peer.session;
}

function watchSession(session, direction) {
  peer.session = session;
  peer.analysedTrackId = undefined;
  session.delegate = {
    onBye(bye) {
      setEnded(session, "remote");
      bye.accept();
    },
    onCancel(cancel) {
      setEnded(session, "remote");
      emit("cancelled", {});
      void cancel;
    },
    onInfo(info) {
      const body = bodyOf(info.request);
      const contentType = (info.request.getHeader("Content-Type") || "").toLowerCase();
      const parsed = contentType.startsWith("application/dtmf-relay") ? parseDtmfRelay(body) : {};
      info.accept();
      emit("info", { content_type: contentType, body, digit: parsed.digit || null,
                     duration: parsed.duration === undefined ? null : parsed.duration });
    },
    onInvite(request, response, statusCode) {
      // A re-INVITE we answered: report what the far end offered.
      const dir = sdpDirection(bodyOf(request));
      emit("reinvite", { direction: dir, status: statusCode, headers: headersOf(request) });
      emit("hold", { held: dir === "sendonly" || dir === "inactive", direction: dir });
    },
  };
  session.stateChange.addListener((state) => {
    if (state === SessionState.Established) {
      attachRemoteAudio();
      watchIce(session);
      emit("established", { direction });
    } else if (state === SessionState.Terminated) {
      if (peer.session === session) peer.session = undefined;
      // SIP.js moves to Terminated before it runs the request delegate (e.g. onReject for a
      // 486), so report after the current task to let those callbacks record who ended it.
      setTimeout(() => emit("terminated", { by: endedBy.get(session) || "unknown", direction }), 0);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// API

peer.configure = function configure(options) {
  if (options && "toneHz" in options) peer.toneHz = options.toneHz === null ? undefined : options.toneHz;
  if (options && "toneGain" in options) peer.toneGain = options.toneGain;
  return { toneHz: peer.toneHz === undefined ? null : peer.toneHz, toneGain: peer.toneGain };
};

peer.register = async function register(wsUrl, aor, authUser, password, displayName) {
  if (peer.ua) throw new Error("already registered or registering");
  const ua = new UserAgent({
    uri: UserAgent.makeURI(aor),
    displayName: displayName || undefined,
    authorizationUsername: authUser,
    authorizationPassword: password,
    transportOptions: { server: wsUrl, traceSip: false },
    logBuiltinEnabled: false,
    logLevel: "warn",
    logConnector: (level, category, label, content) => {
      if (level === "error" || level === "warn") emit("log", { level, category, content: String(content) });
    },
    userAgentString: "exotel-voice-browser-peer (SIP.js 0.21.2)",
    sessionDescriptionHandlerFactory: Web.defaultSessionDescriptionHandlerFactory(mediaStreamFactory),
    sessionDescriptionHandlerFactoryOptions: {
      peerConnectionConfiguration: { iceServers: [] },
      iceGatheringTimeout: 2000,
    },
    delegate: {
      onInvite(invitation) {
        if (peer.session) {
          invitation.reject({ statusCode: 486 }).catch(() => undefined);
          emit("busy", { from: invitation.remoteIdentity.uri.toString() });
          return;
        }
        watchSession(invitation, "incoming");
        const request = invitation.request;
        emit("incoming", {
          from: invitation.remoteIdentity.uri.toString(),
          display_name: invitation.remoteIdentity.displayName || null,
          to: request.to.uri.toString(),
          call_id: request.callId,
          headers: headersOf(request),
          sdp_direction: sdpDirection(bodyOf(request)),
        });
        invitation.progress().catch((e) => emit("log", { level: "error", content: String(e) }));
      },
      onDisconnect(error) {
        emit("disconnected", { error: error ? String(error.message || error) : null });
        if (error && peer.recovery.reconnect) void reconnectAfterLoss();
      },
    },
  });
  peer.ua = ua;
  await ua.start();
  const registerer = new Registerer(ua, { expires: 300 });
  peer.registerer = registerer;
  registerer.stateChange.addListener((state) => {
    if (state === RegistererState.Registered) emit("registered", { aor });
    else if (state === RegistererState.Unregistered) emit("unregistered", { aor });
  });
  await registerer.register({
    requestDelegate: {
      onReject(response) {
        emit("register_failed", { status: response.message.statusCode, reason: response.message.reasonPhrase });
      },
    },
  });
  return true;
};

peer.unregister = async function unregister() {
  if (!peer.registerer) throw new Error("not registered");
  await peer.registerer.unregister();
  return true;
};

peer.stop = async function stop() {
  if (peer.ua) {
    const ua = peer.ua;
    peer.ua = undefined;
    peer.registerer = undefined;
    await ua.stop();
  }
  return true;
};

peer.call = async function call(targetUri, options) {
  if (!peer.ua) throw new Error("not registered");
  if (peer.session) throw new Error("a call is already in progress");
  const target = UserAgent.makeURI(targetUri);
  if (!target) throw new Error("bad target URI");
  const extraHeaders = [];
  const given = (options && options.extraHeaders) || {};
  for (const name of Object.keys(given)) extraHeaders.push(`${name}: ${given[name]}`);
  const inviter = new Inviter(peer.ua, target, { extraHeaders });
  watchSession(inviter, "outgoing");
  await inviter.invite({
    requestDelegate: {
      onTrying() {
        emit("trying", {});
      },
      onProgress(response) {
        const status = response.message.statusCode;
        emit(status === 180 ? "ringing" : "progress", { status, reason: response.message.reasonPhrase });
      },
      onAccept(response) {
        emit("answered", { status: response.message.statusCode, headers: headersOf(response.message) });
      },
      onReject(response) {
        setEnded(inviter, "remote");
        emit("rejected", { status: response.message.statusCode, reason: response.message.reasonPhrase });
      },
    },
  });
  return { call_id: inviter.request.callId };
};

peer.answer = async function answer() {
  const session = requireSession();
  if (!(session instanceof Invitation)) throw new Error("no incoming call to answer");
  await session.accept();
  return true;
};

peer.reject = async function reject(code) {
  const session = requireSession();
  if (!(session instanceof Invitation)) throw new Error("no incoming call to reject");
  setEnded(session, "local");
  await session.reject({ statusCode: code || 486 });
  return true;
};

peer.hangup = async function hangup() {
  const session = requireSession();
  setEnded(session, "local");
  if (session.state === SessionState.Established) await session.bye();
  else if (session instanceof Inviter) await session.cancel();
  else if (session instanceof Invitation) await session.reject({ statusCode: 486 });
  return true;
};

// Hold with SIP.js's own SessionDescriptionHandler support: `hold: true` in the re-INVITE's SDH
// options makes it offer a=sendonly (or inactive) and flip the transceiver direction.
async function setHold(hold) {
  const session = requireSession();
  if (session.state !== SessionState.Established) throw new Error("call not established");
  const options = Object.assign({}, session.sessionDescriptionHandlerOptionsReInvite, { hold });
  session.sessionDescriptionHandlerOptionsReInvite = options;
  const result = await new Promise((resolve, reject) => {
    session
      .invite({
        requestDelegate: {
          onAccept(response) {
            resolve({ status: response.message.statusCode, direction: sdpDirection(bodyOf(response.message)) });
          },
          onReject(response) {
            resolve({ status: response.message.statusCode, direction: null });
          },
        },
      })
      .catch(reject);
  });
  emit("local_hold", { held: hold, status: result.status, answer_direction: result.direction });
  return result;
}

peer.hold = () => setHold(true);
peer.unhold = () => setHold(false);

peer.sendDtmfInfo = async function sendDtmfInfo(digit, durationMs) {
  const session = requireSession();
  if (!/^[0-9A-D#*]$/.test(digit)) throw new Error("bad DTMF digit");
  const duration = durationMs || 160;
  const status = await new Promise((resolve, reject) => {
    session
      .info({
        requestDelegate: {
          onAccept: (r) => resolve(r.message.statusCode),
          onReject: (r) => resolve(r.message.statusCode),
        },
        requestOptions: {
          body: {
            contentDisposition: "render",
            contentType: "application/dtmf-relay",
            content: `Signal=${digit}\r\nDuration=${duration}\r\n`,
          },
        },
      })
      .catch(reject);
  });
  emit("info_sent", { digit, status });
  return status;
};

// RFC 4733 telephone-events through the browser's RTCDTMFSender.
peer.sendDtmfRtp = async function sendDtmfRtp(digits, durationMs, gapMs) {
  const pc = peerConnection();
  if (!pc) throw new Error("no call");
  const sender = pc.getSenders().find((s) => s.track && s.track.kind === "audio") || pc.getSenders()[0];
  if (!sender || !sender.dtmf) throw new Error("no DTMF sender");
  if (!sender.dtmf.canInsertDTMF) throw new Error("telephone-event not negotiated");
  const done = new Promise((resolve) => {
    sender.dtmf.ontonechange = (ev) => {
      if (ev.tone === "") resolve();
      else emit("dtmf_rtp_tone", { tone: ev.tone });
    };
  });
  sender.dtmf.insertDTMF(digits, durationMs || 100, gapMs || 70);
  await done;
  emit("dtmf_rtp_sent", { digits });
  return true;
};

peer.receivedTone = (durationMs) => receivedTone(durationMs || 600);
peer.mediaStats = mediaStats;
peer.state = function state() {
  return {
    registered: !!(peer.registerer && peer.registerer.state === RegistererState.Registered),
    session: peer.session ? String(peer.session.state) : null,
    local_direction: (() => {
      const pc = peerConnection();
      const t = pc && pc.getTransceivers()[0];
      return t ? t.currentDirection : null;
    })(),
  };
};

// ---------------------------------------------------------------------------------------------
// Field recovery (bench/field_recovery.py): what a SIP.js application writes itself, since
// SIP.js 0.21 does none of it on its own.  Off unless peer.setRecovery() turns it on.
//
// * reconnect: on a transport lost with an error, ua.reconnect() at once (then every
//   retryMs), and REGISTER again once connected (SIP.js's "reconnection" guide, without its
//   4 s first delay).
// * refreshTarget: after that, a re-INVITE in the call so the far end's dialog target
//   names the new connection (RFC 5626-less target refresh; browsers' SIP stacks don't).
// * iceRestart: when the peer connection's ICE state goes "disconnected" or "failed", a
//   re-INVITE with offerOptions.iceRestart (Chromium restarts ICE only when asked).
// Each step is emitted with its page time `t` and epoch milliseconds `wall`.

peer.recovery = { reconnect: false, refreshTarget: false, iceRestart: false, retryMs: 500 };
peer.setRecovery = function setRecovery(options) {
  Object.assign(peer.recovery, options || {});
  return Object.assign({}, peer.recovery);
};

const wall = () => performance.timeOrigin + performance.now();

function reinvite(options, kind) {
  const session = peer.session;
  if (!session || session.state !== SessionState.Established) return Promise.resolve(null);
  const sent = wall();
  return new Promise((resolve) => {
    const done = (status) => {
      emit(kind, { status, sent_wall: sent, wall: wall() });
      resolve(status);
    };
    session
      .invite({
        sessionDescriptionHandlerOptions: options,
        requestDelegate: {
          onAccept: (r) => done(r.message.statusCode),
          onReject: (r) => done(r.message.statusCode),
        },
      })
      .catch((e) => {
        emit("log", { level: "error", content: `${kind}: ${e}` });
        resolve(null);
      });
  });
}

let reconnecting = false;
async function reconnectAfterLoss() {
  if (reconnecting) return;
  reconnecting = true;
  try {
    while (peer.ua && !peer.ua.isConnected()) {
      try {
        await peer.ua.reconnect();
      } catch (e) {
        await sleep(peer.recovery.retryMs);
      }
    }
    if (!peer.ua) return;
    emit("reconnected", { wall: wall() });
    if (peer.registerer) {
      await new Promise((resolve) => {
        peer.registerer
          .register({
            requestDelegate: {
              onAccept: (r) => resolve(emit("reregistered", { status: r.message.statusCode, wall: wall() })),
              onReject: (r) => resolve(emit("register_failed", { status: r.message.statusCode, wall: wall() })),
            },
          })
          .catch((e) => resolve(emit("log", { level: "error", content: String(e) })));
      });
    }
    if (peer.recovery.refreshTarget) await reinvite({}, "target_refresh");
  } finally {
    reconnecting = false;
  }
}

function watchIce(session) {
  const pc = peerConnection();
  if (!pc || pc.__watched) return;
  pc.__watched = true;
  let restarting = false;
  pc.addEventListener("icecandidate", (e) => {
    emit("ice_candidate", { address: e.candidate ? e.candidate.address : null, wall: wall() });
  });
  pc.addEventListener("iceconnectionstatechange", async () => {
    const state = pc.iceConnectionState;
    emit("ice_state", { state, wall: wall() });
    if (!peer.recovery.iceRestart || restarting || peer.session !== session) return;
    if (state !== "disconnected" && state !== "failed") return;
    restarting = true;
    try {
      await reinvite({ offerOptions: { iceRestart: true } }, "ice_restart");
    } finally {
      restarting = false;
    }
  });
}

// Tone monitor: every `everyMs`, the last ~21 ms of remote audio (AnalyserNode, 1024 samples)
// -> [epoch ms, power at `hz` / total power (Goertzel), RMS].  takeToneLog() drains it.
peer.toneLog = [];
peer.startToneMonitor = function startToneMonitor(hz, everyMs) {
  peer.stopToneMonitor();
  const state = { analyser: null, trackId: null };
  const buf = new Float32Array(1024);
  peer.toneTimer = setInterval(() => {
    const handler = sdh();
    const stream = handler && handler.remoteMediaStream;
    const track = stream && stream.getAudioTracks()[0];
    if (!track) return;
    attachRemoteAudio();
    if (state.trackId !== track.id) {
      const ctx = audioContext();
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      state.analyser = ctx.createAnalyser();
      state.analyser.fftSize = buf.length;
      source.connect(state.analyser);
      state.trackId = track.id;
    }
    state.analyser.getFloatTimeDomainData(buf);
    const rate = audioContext().sampleRate;
    const coeff = 2 * Math.cos((2 * Math.PI * hz) / rate);
    let s1 = 0;
    let s2 = 0;
    let energy = 0;
    for (let i = 0; i < buf.length; i++) {
      const s0 = buf[i] + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
      energy += buf[i] * buf[i];
    }
    const n = buf.length;
    const tonePower = (2 * (s1 * s1 + s2 * s2 - coeff * s1 * s2)) / (n * n);
    const meanSquare = energy / n;
    peer.toneLog.push([wall(), meanSquare > 0 ? tonePower / meanSquare : 0, Math.sqrt(meanSquare)]);
  }, everyMs || 10);
  return true;
};
peer.stopToneMonitor = function stopToneMonitor() {
  if (peer.toneTimer) clearInterval(peer.toneTimer);
  peer.toneTimer = undefined;
  return true;
};
peer.takeToneLog = function takeToneLog() {
  const out = peer.toneLog;
  peer.toneLog = [];
  return out;
};

window.peer = peer;
emit("ready", { sipjs: "0.21.2" });
