// Pure UI state: `reduce(state, event, nowMs)` folds phone events into what the views show.
// Time is an argument (no clock read here), so tests are deterministic.
import type { Event } from "./bindings";
import type { CallDirection, CallId, ErrorCode, EventOf, QualityReport } from "./types";

export type Registration =
  | { status: "unregistered" }
  | { status: "connecting"; registrar: string | null }
  | { status: "registered"; expires: number }
  | { status: "failed"; code: number | null; reason: string };

export type CallStatus = "calling" | "ringing" | "incoming" | "active" | "held" | "ended";

/** The other side of a call, parsed from a SIP `From`/`To` value. */
export type Party = { name: string | null; number: string };

/** Twilio's voice-insights thresholds. */
export const THRESHOLDS = { rttMs: 400, jitterMs: 30, lossPercent: 3, mos: 3.5 } as const;
export const MOS_HISTORY_LENGTH = 24;
export const NOTICE_LIMIT = 5;

export type QualityWarning = "rtt" | "jitter" | "loss" | "mos";

export type Transfer =
  | { status: "done"; target: string }
  | { status: "failed"; reason: string };

export type EndInfo = { reason: string; normal: boolean; code: number | null; detail: string; mos: number | null };

/** The agent's state on the contact-center platform. */
export type AgentStateName = "logged_out" | "ready" | "not_ready" | "on_call" | "after_call_work";
export const AGENT_STATES: readonly AgentStateName[] = ["logged_out", "ready", "not_ready", "on_call", "after_call_work"];

export type Agent = { state: AgentStateName; reason: string | null; sinceMs: number };

/** The customer card of a call (screen-pop): in memory only, never stored. */
export type CustomerContext =
  | { status: "loading" }
  | { status: "ready"; rows: [label: string, value: string][] }
  | { status: "error"; message: string };

/** The wrap-up of an answered call that has ended: still to do, or queued under `key`. */
export type WrapupStatus = { status: "open" } | { status: "queued"; key: string; disposition: string };

export type Call = {
  id: CallId;
  direction: CallDirection;
  remote: Party;
  status: CallStatus;
  startedAtMs: number;
  answeredAtMs: number | null;
  endedAtMs: number | null;
  autoAnswered: boolean;
  muted: boolean;
  localHold: boolean;
  remoteHold: boolean;
  codec: string | null;
  /** The SRTP suite protecting the audio once established; null: plain RTP (or not yet). */
  srtp: string | null;
  quality: QualityReport | null;
  mosHistory: number[];
  warnings: QualityWarning[];
  dtmfReceived: string;
  dtmfSent: string;
  inputEnded: boolean;
  transfer: Transfer | null;
  end: EndInfo | null;
  /** Null for calls without a screen-pop (outgoing calls). */
  context: CustomerContext | null;
  /** Null until an answered call ends. */
  wrapup: WrapupStatus | null;
};

export type Notice = { kind: "warning" | "error"; code: ErrorCode | null; message: string; atMs: number };

export type Engine = "starting" | "ready" | "stopped";

export type PhoneState = {
  engine: Engine;
  /** Our own SIP address from `ready`. */
  sip: string | null;
  registration: Registration;
  calls: Record<CallId, Call>;
  notices: Notice[];
  /** Null until the first `agent_state` event (no contact-center platform). */
  agent: Agent | null;
  /** Wrap-ups stored in the outbox, not yet acknowledged by the platform. */
  wrapupsPending: number;
};

export function initialState(): PhoneState {
  return { engine: "starting", sip: null, registration: { status: "unregistered" }, calls: {}, notices: [], agent: null, wrapupsPending: 0 };
}

export function reduce(state: PhoneState, event: Event, nowMs: number): PhoneState {
  switch (event.event) {
    case "ready":
      return { ...state, engine: "ready", sip: event.sip };
    case "registering":
      return { ...state, registration: { status: "connecting", registrar: event.registrar } };
    case "registered":
      return { ...state, registration: { status: "registered", expires: event.expires } };
    case "registration_failed":
      return { ...state, registration: { status: "failed", code: event.code, reason: event.reason } };
    case "unregistered":
      return { ...state, registration: { status: "unregistered" } };
    case "calling":
      return addCall(state, newCall(event.call, "outgoing", parseParty(event.to), "calling", nowMs));
    case "incoming":
      return addCall(state, { ...newCall(event.call, "incoming", parseParty(event.from), "incoming", nowMs), context: { status: "loading" } });
    case "ringing":
      return updateCall(state, event.call, (call) =>
        call.status === "calling" ? { ...call, status: "ringing" } : call,
      );
    case "answered":
      return updateCall(state, event.call, (call) => ({
        ...answer(call, nowMs),
        autoAnswered: call.autoAnswered || event.auto,
      }));
    case "established":
      return updateCall(state, event.call, (call) => ({
        ...answer(call, nowMs),
        codec: event.codec,
        // ICE + DTLS may have keyed the media before the call was established.
        srtp: typeof event.srtp === "string" ? event.srtp : call.srtp,
      }));
    case "ice_connected":
      return updateCall(state, event.call, (call) => ({ ...call, srtp: `DTLS-SRTP ${event.srtp}` }));
    case "hold":
      return updateCall(state, event.call, (call) =>
        withHold(call, event.local ? { localHold: true } : { remoteHold: true }),
      );
    case "resume":
      return updateCall(state, event.call, (call) =>
        withHold(call, event.local ? { localHold: false } : { remoteHold: false }),
      );
    case "muted":
      return updateCall(state, event.call, (call) => ({ ...call, muted: event.muted }));
    case "dtmf":
      return updateCall(state, event.call, (call) => ({ ...call, dtmfReceived: call.dtmfReceived + event.digit }));
    case "dtmf_sent":
      return updateCall(state, event.call, (call) => ({ ...call, dtmfSent: call.dtmfSent + event.digits }));
    case "audio_input_ended":
      return updateCall(state, event.call, (call) => ({ ...call, inputEnded: true }));
    case "transferred":
      return updateCall(state, event.call, (call) => ({ ...call, transfer: { status: "done", target: event.target } }));
    case "transfer_failed":
      return updateCall(state, event.call, (call) => ({ ...call, transfer: { status: "failed", reason: event.reason } }));
    case "quality": {
      const { event: _kind, call: id, ...report } = event;
      return updateCall(state, id, (call) => ({
        ...call,
        quality: report,
        // A figure Rust could not compute arrives as null (JSON has no NaN): left out.
        mosHistory: (report.mos === null ? call.mosHistory : [...call.mosHistory, report.mos]).slice(-MOS_HISTORY_LENGTH),
        warnings: qualityWarnings(report),
      }));
    }
    case "ended":
      return updateCall(state, event.call, (call) => ({
        ...call,
        status: "ended",
        endedAtMs: nowMs,
        wrapup: call.answeredAtMs !== null ? { status: "open" } : null,
        end: {
          reason: event.reason,
          normal: event.normal,
          code: event.code,
          detail: event.detail,
          mos: event.stats.mos,
        },
      }));
    case "agent_state": {
      const name = agentStateName(event.state);
      if (name === null) return state;
      const reason = name === "not_ready" ? (event.reason ?? null) : null;
      // A repeated state (replayed when a window opens) keeps its start time.
      if (state.agent?.state === name && state.agent.reason === reason) return state;
      return { ...state, agent: { state: name, reason, sinceMs: nowMs } };
    }
    case "context":
      return updateWrapupCall(state, event.call, (call) => ({ ...call, context: customerContext(event) }));
    case "wrapup_queued":
      return updateWrapupCall(state, event.call, (call) => ({
        ...call,
        // The customer's data leaves memory once the wrap-up is safe in the outbox.
        context: null,
        wrapup: { status: "queued", key: event.key, disposition: event.disposition },
      }));
    case "wrapup_delivered":
      return { ...state, wrapupsPending: Math.max(0, event.pending) };
    case "warning":
      return addNotice(state, { kind: "warning", code: null, message: event.message, atMs: nowMs });
    case "error":
      return addNotice(state, { kind: "error", code: event.code, message: event.message, atMs: nowMs });
    case "stopped":
      return {
        ...state,
        engine: "stopped",
        registration: { status: "unregistered" },
        calls: mapCalls(state.calls, (call) =>
          call.status === "ended" ? call : { ...call, status: "ended", endedAtMs: nowMs },
        ),
      };
  }
}

function agentStateName(value: string): AgentStateName | null {
  return (AGENT_STATES as readonly string[]).includes(value) ? (value as AgentStateName) : null;
}

function customerContext(event: EventOf<"context">): CustomerContext {
  if (event.error !== undefined && event.error !== null) return { status: "error", message: event.error };
  const rows: [string, string][] = [];
  // `rows` keeps the configured order; an object's order is lost for number-like labels.
  const pairs: [unknown, unknown][] = Array.isArray(event.rows)
    ? event.rows.map((row) => [row?.label, row?.value])
    : Object.entries(event.fields ?? {});
  for (const [label, value] of pairs) {
    // Shown as text whatever arrives: non-strings are not trusted to be strings.
    if (typeof label === "string" && typeof value === "string") rows.push([label, value]);
  }
  return { status: "ready", rows };
}

/** The warnings for one quality report, by Twilio's thresholds (strictly above / below). */
export function qualityWarnings(report: QualityReport): QualityWarning[] {
  const warnings: QualityWarning[] = [];
  if (report.rtt_ms !== null && report.rtt_ms > THRESHOLDS.rttMs) warnings.push("rtt");
  if (report.jitter_ms !== null && report.jitter_ms > THRESHOLDS.jitterMs) warnings.push("jitter");
  if (Math.max(report.loss_percent ?? 0, report.remote_loss_percent ?? 0) > THRESHOLDS.lossPercent) warnings.push("loss");
  if (report.mos !== null && report.mos < THRESHOLDS.mos) warnings.push("mos");
  return warnings;
}

/**
 * Parses `"Jean Dupont" <sip:+33612345678@host>`, `Jean <sip:1001@host;user=phone>`,
 * `sip:1001@host`, `tel:+33612345678` or a bare number.
 */
export function parseParty(value: string): Party {
  const text = value.trim();
  const open = text.indexOf("<");
  const close = text.lastIndexOf(">");
  let name: string | null = null;
  let uri = text;
  if (open >= 0 && close > open) {
    uri = text.slice(open + 1, close);
    name = unquote(text.slice(0, open).trim()) || null;
  }
  const number = uriUser(uri.trim());
  if (name === number) name = null;
  return { name, number };
}

function unquote(text: string): string {
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    return text.slice(1, -1).replace(/\\(.)/g, "$1").trim();
  }
  return text;
}

function uriUser(uri: string): string {
  const scheme = /^(sips?|tel):/i.exec(uri);
  if (!scheme) return uri;
  let rest = uri.slice(scheme[0].length);
  rest = rest.split("?")[0] ?? rest;
  let user: string;
  if (scheme[1]?.toLowerCase() === "tel") {
    user = rest.split(";")[0] ?? rest;
  } else {
    const at = rest.lastIndexOf("@");
    // `sip:host` has no user part: show the host.
    user = at >= 0 ? (rest.slice(0, at).split(":")[0] ?? "") : (rest.split(";")[0] ?? rest);
    user = user.split(";")[0] ?? user;
  }
  try {
    return decodeURIComponent(user);
  } catch {
    return user;
  }
}

function newCall(id: CallId, direction: CallDirection, remote: Party, status: CallStatus, nowMs: number): Call {
  return {
    id,
    direction,
    remote,
    status,
    startedAtMs: nowMs,
    answeredAtMs: null,
    endedAtMs: null,
    autoAnswered: false,
    muted: false,
    localHold: false,
    remoteHold: false,
    codec: null,
    srtp: null,
    quality: null,
    mosHistory: [],
    warnings: [],
    dtmfReceived: "",
    dtmfSent: "",
    inputEnded: false,
    transfer: null,
    end: null,
    context: null,
    wrapup: null,
  };
}

/**
 * A new call clears the calls that had ended (their summary has been seen), except, for a
 * contact-center agent, those whose wrap-up is still to do.
 */
function addCall(state: PhoneState, call: Call): PhoneState {
  const calls: Record<CallId, Call> = {};
  for (const existing of Object.values(state.calls)) {
    const keep = existing.status !== "ended" || (state.agent !== null && existing.wrapup?.status === "open");
    if (keep && existing.id !== call.id) calls[existing.id] = existing;
  }
  calls[call.id] = call;
  return { ...state, calls };
}

function updateCall(state: PhoneState, id: CallId, update: (call: Call) => Call): PhoneState {
  const call = state.calls[id];
  if (call === undefined || call.status === "ended") return state;
  return { ...state, calls: { ...state.calls, [id]: update(call) } };
}

/** Like `updateCall`, also for an ended call whose wrap-up is still open. */
function updateWrapupCall(state: PhoneState, id: CallId, update: (call: Call) => Call): PhoneState {
  const call = state.calls[id];
  if (call === undefined) return state;
  if (call.status === "ended" && call.wrapup?.status !== "open") return state;
  return { ...state, calls: { ...state.calls, [id]: update(call) } };
}

function mapCalls(calls: Record<CallId, Call>, update: (call: Call) => Call): Record<CallId, Call> {
  const result: Record<CallId, Call> = {};
  for (const call of Object.values(calls)) result[call.id] = update(call);
  return result;
}

function answer(call: Call, nowMs: number): Call {
  const held = call.localHold || call.remoteHold;
  return { ...call, status: held ? "held" : "active", answeredAtMs: call.answeredAtMs ?? nowMs };
}

function withHold(call: Call, change: Partial<Pick<Call, "localHold" | "remoteHold">>): Call {
  const next = { ...call, ...change };
  if (next.answeredAtMs === null) return next;
  return { ...next, status: next.localHold || next.remoteHold ? "held" : "active" };
}

function addNotice(state: PhoneState, notice: Notice): PhoneState {
  return { ...state, notices: [...state.notices, notice].slice(-NOTICE_LIMIT) };
}

/**
 * Removes the ended calls, or only the ended call `id` (the agent dismissed their summary or
 * wrap-up): their customer data goes with them.
 */
export function dismissEnded(state: PhoneState, id?: CallId): PhoneState {
  const calls: Record<CallId, Call> = {};
  for (const call of Object.values(state.calls)) {
    if (call.status !== "ended" || (id !== undefined && call.id !== id)) calls[call.id] = call;
  }
  return { ...state, calls };
}

export function dismissNotices(state: PhoneState): PhoneState {
  return { ...state, notices: [] };
}

// ---- Selectors ----

export function liveCalls(state: PhoneState): Call[] {
  return Object.values(state.calls)
    .filter((call) => call.status !== "ended")
    .sort((a, b) => a.startedAtMs - b.startedAtMs || a.id - b.id);
}

/** The oldest incoming call still ringing: the one the incoming panel shows. */
export function ringingIncoming(state: PhoneState): Call | null {
  return liveCalls(state).find((call) => call.status === "incoming") ?? null;
}

/**
 * The call the main controls act on: the active call, else an outgoing call being set up,
 * else a held call; the most recent of its kind.
 */
export function focusedCall(state: PhoneState): Call | null {
  const calls = liveCalls(state).reverse();
  return (
    calls.find((call) => call.status === "active") ??
    calls.find((call) => call.status === "calling" || call.status === "ringing") ??
    calls.find((call) => call.status === "held") ??
    null
  );
}

export function endedCalls(state: PhoneState): Call[] {
  return Object.values(state.calls).filter((call) => call.status === "ended");
}

/** Ended answered calls whose wrap-up is still to do, oldest first. */
export function openWrapups(state: PhoneState): Call[] {
  return endedCalls(state)
    .filter((call) => call.wrapup?.status === "open")
    .sort((a, b) => (a.endedAtMs ?? 0) - (b.endedAtMs ?? 0) || a.id - b.id);
}

/** Seconds of after-call work left for an ended call, or null without a limit. */
export function wrapupSecondsLeft(call: Call, wrapupSeconds: number | null, nowMs: number): number | null {
  if (wrapupSeconds === null || call.endedAtMs === null) return null;
  return Math.max(0, Math.ceil(wrapupSeconds - (nowMs - call.endedAtMs) / 1000));
}

/**
 * For an attended transfer between two calls: the older call is the one transferred (the
 * customer), the newer one is the consultation (the colleague).
 */
export function attendedTransferPair(a: Call, b: Call): { call: CallId; consultation: CallId } {
  const [first, second] = a.startedAtMs < b.startedAtMs || (a.startedAtMs === b.startedAtMs && a.id < b.id) ? [a, b] : [b, a];
  return { call: first.id, consultation: second.id };
}
