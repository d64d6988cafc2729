import { describe, expect, it } from "vitest";
import type { Event } from "./bindings";
import {
  MOS_HISTORY_LENGTH,
  NOTICE_LIMIT,
  attendedTransferPair,
  dismissEnded,
  focusedCall,
  initialState,
  liveCalls,
  openWrapups,
  parseParty,
  qualityWarnings,
  reduce,
  ringingIncoming,
  wrapupSecondsLeft,
  type PhoneState,
} from "./state";
import type { QualityReport } from "./types";

const T0 = 1_700_000_000_000;

function run(events: [Event, number][], start: PhoneState = initialState()): PhoneState {
  return events.reduce((state, [event, at]) => reduce(state, event, at), start);
}

function quality(call: number, overrides: Partial<QualityReport> = {}): Event {
  return {
    event: "quality",
    call,
    mos: 4.2,
    local_mos: 4.2,
    remote_mos: 4.1,
    loss_percent: 0,
    remote_loss_percent: 0,
    concealed_percent: 0,
    jitter_ms: 5,
    rtt_ms: 40,
    playout_delay_ms: 60,
    one_way_delay_ms: 30,
    fec_recovered: 0,
    ...overrides,
  };
}

function report(overrides: Partial<QualityReport> = {}): QualityReport {
  const { event: _e, call: _c, ...rest } = quality(1, overrides) as Extract<Event, { event: "quality" }>;
  return rest;
}

const incoming: Event = { event: "incoming", call: 7, from: '"Jean Dupont" <sip:+33612345678@sbc.example>', to: "<sip:agent01@sbc.example>" };

describe("registration", () => {
  it("starts unregistered and follows registering, registered, failed, unregistered", () => {
    let state = initialState();
    expect(state.registration).toEqual({ status: "unregistered" });
    state = reduce(state, { event: "ready", sip: "sip:agent01@sbc.example" }, T0);
    expect(state.engine).toBe("ready");
    expect(state.sip).toBe("sip:agent01@sbc.example");
    state = reduce(state, { event: "registering", registrar: "sip:sbc.example" }, T0);
    expect(state.registration).toEqual({ status: "connecting", registrar: "sip:sbc.example" });
    state = reduce(state, { event: "registered", expires: 600 }, T0);
    expect(state.registration).toEqual({ status: "registered", expires: 600 });
    state = reduce(state, { event: "registration_failed", code: 403, reason: "Forbidden" }, T0);
    expect(state.registration).toEqual({ status: "failed", code: 403, reason: "Forbidden" });
    state = reduce(state, { event: "unregistered" }, T0);
    expect(state.registration).toEqual({ status: "unregistered" });
  });

  it("does not mutate the previous state", () => {
    const before = initialState();
    const after = reduce(before, { event: "registered", expires: 60 }, T0);
    expect(before.registration.status).toBe("unregistered");
    expect(after).not.toBe(before);
  });
});

describe("calls", () => {
  it("an incoming call rings, is answered, established and ended", () => {
    let state = reduce(initialState(), incoming, T0);
    const ringing = state.calls[7]!;
    expect(ringing.status).toBe("incoming");
    expect(ringing.direction).toBe("incoming");
    expect(ringing.remote).toEqual({ name: "Jean Dupont", number: "+33612345678" });
    expect(ringing.startedAtMs).toBe(T0);
    expect(ringingIncoming(state)?.id).toBe(7);
    // A 180 for an incoming call does not change it.
    state = reduce(state, { event: "ringing", call: 7 }, T0 + 10);
    expect(state.calls[7]!.status).toBe("incoming");

    state = reduce(state, { event: "answered", call: 7, auto: false }, T0 + 3000);
    expect(state.calls[7]!.status).toBe("active");
    expect(state.calls[7]!.answeredAtMs).toBe(T0 + 3000);
    expect(ringingIncoming(state)).toBeNull();

    state = reduce(state, { event: "established", call: 7, codec: "opus", remote_rtp: "192.0.2.1:4000" }, T0 + 3200);
    expect(state.calls[7]!.codec).toBe("opus");
    // The answer time is the first of answered / established.
    expect(state.calls[7]!.answeredAtMs).toBe(T0 + 3000);

    state = reduce(
      state,
      {
        event: "ended",
        call: 7,
        reason: "remote_hangup",
        normal: true,
        code: null,
        detail: "BYE",
        stats: { codec: "opus", duration_s: 12, packets_sent: 600, packets_received: 598, packets_lost: 2, jitter_ms: 4, rtt_ms: 30, mos: 4.3 },
      },
      T0 + 15000,
    );
    const ended = state.calls[7]!;
    expect(ended.status).toBe("ended");
    expect(ended.endedAtMs).toBe(T0 + 15000);
    expect(ended.end).toEqual({ reason: "remote_hangup", normal: true, code: null, detail: "BYE", mos: 4.3 });
    expect(liveCalls(state)).toHaveLength(0);
    expect(dismissEnded(state).calls).toEqual({});
  });

  it("an outgoing call goes calling -> ringing -> active via established alone", () => {
    let state = reduce(initialState(), { event: "calling", call: 1, to: "sip:0612345678@sbc.example" }, T0);
    expect(state.calls[1]!.status).toBe("calling");
    expect(state.calls[1]!.direction).toBe("outgoing");
    expect(state.calls[1]!.remote).toEqual({ name: null, number: "0612345678" });
    expect(focusedCall(state)?.id).toBe(1);
    state = reduce(state, { event: "ringing", call: 1 }, T0 + 500);
    expect(state.calls[1]!.status).toBe("ringing");
    state = reduce(state, { event: "established", call: 1, codec: "PCMA", remote_rtp: "x" }, T0 + 4000);
    expect(state.calls[1]!.status).toBe("active");
    expect(state.calls[1]!.answeredAtMs).toBe(T0 + 4000);
  });

  it("remembers an auto-answer", () => {
    const state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: true }, T0 + 1],
    ]);
    expect(state.calls[7]!.autoAnswered).toBe(true);
  });

  it("local and remote hold are tracked separately", () => {
    let state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: false }, T0 + 1],
      [{ event: "hold", call: 7, local: true }, T0 + 2],
    ]);
    expect(state.calls[7]!.status).toBe("held");
    expect(state.calls[7]!.localHold).toBe(true);
    state = reduce(state, { event: "hold", call: 7, local: false }, T0 + 3);
    state = reduce(state, { event: "resume", call: 7, local: true }, T0 + 4);
    expect(state.calls[7]!.status).toBe("held");
    expect(state.calls[7]!.localHold).toBe(false);
    expect(state.calls[7]!.remoteHold).toBe(true);
    state = reduce(state, { event: "resume", call: 7, local: false }, T0 + 5);
    expect(state.calls[7]!.status).toBe("active");
  });

  it("tracks mute, DTMF both ways, end of audio input and transfers", () => {
    let state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: false }, T0 + 1],
      [{ event: "muted", call: 7, muted: true }, T0 + 2],
      [{ event: "dtmf", call: 7, digit: "4" }, T0 + 3],
      [{ event: "dtmf", call: 7, digit: "#" }, T0 + 4],
      [{ event: "dtmf_sent", call: 7, digits: "12" }, T0 + 5],
      [{ event: "dtmf_sent", call: 7, digits: "*" }, T0 + 6],
      [{ event: "audio_input_ended", call: 7 }, T0 + 7],
    ]);
    const call = state.calls[7]!;
    expect(call.muted).toBe(true);
    expect(call.dtmfReceived).toBe("4#");
    expect(call.dtmfSent).toBe("12*");
    expect(call.inputEnded).toBe(true);
    state = reduce(state, { event: "muted", call: 7, muted: false }, T0 + 8);
    expect(state.calls[7]!.muted).toBe(false);
    state = reduce(state, { event: "transfer_failed", call: 7, reason: "486 Busy" }, T0 + 9);
    expect(state.calls[7]!.transfer).toEqual({ status: "failed", reason: "486 Busy" });
    state = reduce(state, { event: "transferred", call: 7, target: "sip:2000@sbc" }, T0 + 10);
    expect(state.calls[7]!.transfer).toEqual({ status: "done", target: "sip:2000@sbc" });
  });

  it("names DTLS-SRTP from ice_connected, before or after established", () => {
    const iceFirst = run([
      [{ event: "incoming", call: 4, from: "sip:web1@example.org", to: "sip:agent@example.org" }, T0],
      [{ event: "ice_connected", call: 4, local: "host udp 10.0.0.2:4000", remote: "host udp 10.0.0.9:5000", srtp: "AES_CM_128_HMAC_SHA1_80" }, T0 + 10],
      [{ event: "established", call: 4, codec: "opus", remote_rtp: "10.0.0.9:5000" }, T0 + 20],
    ]);
    expect(iceFirst.calls[4]?.srtp).toBe("DTLS-SRTP AES_CM_128_HMAC_SHA1_80");
    const iceAfter = run([
      [{ event: "calling", call: 5, to: "sip:web1@example.org" }, T0],
      [{ event: "established", call: 5, codec: "opus", remote_rtp: "10.0.0.9:5000" }, T0 + 10],
      [{ event: "ice_connected", call: 5, local: "l", remote: "r", srtp: "AEAD_AES_128_GCM" }, T0 + 20],
    ]);
    expect(iceAfter.calls[5]?.srtp).toBe("DTLS-SRTP AEAD_AES_128_GCM");
  });

  it("ignores events for unknown or ended calls", () => {
    const state = run([
      [incoming, T0],
      [{ event: "ended", call: 7, reason: "cancelled", normal: true, code: 487, detail: "", stats: { codec: null, duration_s: 0, packets_sent: 0, packets_received: 0, packets_lost: 0, jitter_ms: 0, rtt_ms: null, mos: null } }, T0 + 1],
    ]);
    expect(reduce(state, { event: "answered", call: 7, auto: false }, T0 + 2)).toBe(state);
    expect(reduce(state, { event: "muted", call: 99, muted: true }, T0 + 2)).toBe(state);
    expect(reduce(state, quality(99), T0 + 2)).toBe(state);
  });

  it("a new call clears the ended ones but keeps the live ones", () => {
    const ended: Event = { event: "ended", call: 1, reason: "local_hangup", normal: true, code: null, detail: "", stats: { codec: null, duration_s: 3, packets_sent: 0, packets_received: 0, packets_lost: 0, jitter_ms: 0, rtt_ms: null, mos: null } };
    const state = run([
      [{ event: "calling", call: 1, to: "sip:1@h" }, T0],
      [{ event: "calling", call: 2, to: "sip:2@h" }, T0 + 1],
      [ended, T0 + 2],
      [incoming, T0 + 3],
    ]);
    expect(Object.keys(state.calls).sort()).toEqual(["2", "7"]);
  });

  it("stopped ends every live call and the registration", () => {
    const state = run([
      [{ event: "registered", expires: 60 }, T0],
      [incoming, T0],
      [{ event: "stopped" }, T0 + 9],
    ]);
    expect(state.engine).toBe("stopped");
    expect(state.registration.status).toBe("unregistered");
    expect(state.calls[7]!.status).toBe("ended");
    expect(state.calls[7]!.endedAtMs).toBe(T0 + 9);
  });

  it("focuses the active call over a held one and picks the transfer direction by age", () => {
    const state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: false }, T0 + 1],
      [{ event: "hold", call: 7, local: true }, T0 + 2],
      [{ event: "calling", call: 8, to: "sip:2000@h" }, T0 + 3],
    ]);
    expect(focusedCall(state)?.id).toBe(8);
    const next = reduce(state, { event: "established", call: 8, codec: "opus", remote_rtp: "x" }, T0 + 4);
    expect(focusedCall(next)?.id).toBe(8);
    expect(attendedTransferPair(next.calls[8]!, next.calls[7]!)).toEqual({ call: 7, consultation: 8 });
    expect(attendedTransferPair(next.calls[7]!, next.calls[8]!)).toEqual({ call: 7, consultation: 8 });
    const onlyHeld = reduce(next, { event: "ended", call: 8, reason: "x", normal: true, code: null, detail: "", stats: { codec: null, duration_s: 0, packets_sent: 0, packets_received: 0, packets_lost: 0, jitter_ms: 0, rtt_ms: null, mos: null } }, T0 + 5);
    expect(focusedCall(onlyHeld)?.id).toBe(7);
  });
});

describe("quality", () => {
  it("stores the last report and a rolling MOS history", () => {
    let state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: false }, T0 + 1],
    ]);
    for (let i = 0; i < MOS_HISTORY_LENGTH + 6; i++) {
      state = reduce(state, quality(7, { mos: 1 + i / 10 }), T0 + 5000 * i);
    }
    const call = state.calls[7]!;
    expect(call.mosHistory).toHaveLength(MOS_HISTORY_LENGTH);
    expect(call.mosHistory[0]).toBeCloseTo(1.6);
    expect(call.mosHistory.at(-1)).toBeCloseTo(1 + (MOS_HISTORY_LENGTH + 5) / 10);
    expect(call.quality?.mos).toBeCloseTo(1 + (MOS_HISTORY_LENGTH + 5) / 10);
    expect(call.warnings).toEqual([]);
  });

  it("takes figures Rust could not compute (null in JSON) as unknown, not as zero", () => {
    let state = run([
      [incoming, T0],
      [{ event: "answered", call: 7, auto: false }, T0 + 1],
    ]);
    state = reduce(state, quality(7, { mos: 4.2 }), T0 + 5000);
    state = reduce(state, quality(7, { mos: null, jitter_ms: null, loss_percent: null }), T0 + 10000);
    const call = state.calls[7]!;
    expect(call.mosHistory).toEqual([4.2]);
    expect(call.warnings).toEqual([]);
  });

  it("warns strictly beyond each Twilio threshold", () => {
    expect(qualityWarnings(report())).toEqual([]);
    // At the thresholds: no warning.
    expect(qualityWarnings(report({ rtt_ms: 400, jitter_ms: 30, loss_percent: 3, mos: 3.5 }))).toEqual([]);
    expect(qualityWarnings(report({ rtt_ms: 401 }))).toEqual(["rtt"]);
    expect(qualityWarnings(report({ jitter_ms: 30.5 }))).toEqual(["jitter"]);
    expect(qualityWarnings(report({ loss_percent: 3.1 }))).toEqual(["loss"]);
    expect(qualityWarnings(report({ remote_loss_percent: 5 }))).toEqual(["loss"]);
    expect(qualityWarnings(report({ mos: 3.49 }))).toEqual(["mos"]);
    expect(qualityWarnings(report({ rtt_ms: null, remote_loss_percent: null }))).toEqual([]);
    expect(qualityWarnings(report({ rtt_ms: 800, jitter_ms: 80, loss_percent: 10, mos: 2 }))).toEqual(["rtt", "jitter", "loss", "mos"]);
  });

  it("the reducer sets the warnings of the latest report", () => {
    const state = run([
      [incoming, T0],
      [quality(7, { jitter_ms: 45, mos: 3.1 }), T0 + 5000],
    ]);
    expect(state.calls[7]!.warnings).toEqual(["jitter", "mos"]);
    const better = reduce(state, quality(7), T0 + 10000);
    expect(better.calls[7]!.warnings).toEqual([]);
  });
});

describe("notices", () => {
  it("keeps the last warnings and errors", () => {
    let state = initialState();
    for (let i = 0; i < NOTICE_LIMIT + 2; i++) state = reduce(state, { event: "warning", message: `w${i}` }, T0 + i);
    state = reduce(state, { event: "error", code: "audio_device", message: "no microphone" }, T0 + 100);
    expect(state.notices).toHaveLength(NOTICE_LIMIT);
    expect(state.notices.at(-1)).toEqual({ kind: "error", code: "audio_device", message: "no microphone", atMs: T0 + 100 });
    expect(state.notices[0]!.message).toBe(`w${3}`);
  });
});

describe("parseParty", () => {
  it.each([
    ['"Jean Dupont" <sip:+33612345678@sbc.example>', { name: "Jean Dupont", number: "+33612345678" }],
    ["Jean <sip:1001@pbx;user=phone>", { name: "Jean", number: "1001" }],
    ["<sips:0612345678@pbx:5061;transport=tls>", { name: null, number: "0612345678" }],
    ["sip:alice@example.com", { name: null, number: "alice" }],
    ["sip:alice:secret@example.com", { name: null, number: "alice" }],
    ["sip:1001;phone-context=x@pbx", { name: null, number: "1001" }],
    ["tel:+33612345678;ext=12", { name: null, number: "+33612345678" }],
    ["sip:%2B33612345678@pbx?subject=x", { name: null, number: "+33612345678" }],
    ["sip:pbx.example", { name: null, number: "pbx.example" }],
    ["+33 6 12 34 56 78", { name: null, number: "+33 6 12 34 56 78" }],
    ['"\\"Dr\\" Martin" <sip:42@h>', { name: '"Dr" Martin', number: "42" }],
    ['"1001" <sip:1001@h>', { name: null, number: "1001" }],
    ["sip:%E0%A4%A@pbx", { name: null, number: "%E0%A4%A" }],
  ])("%s", (input, expected) => {
    expect(parseParty(input)).toEqual(expected);
  });
});

describe("contact-center workflow", () => {
  const answered: Event = { event: "answered", call: 7, auto: true };
  const ended: Event = {
    event: "ended",
    call: 7,
    reason: "remote_hangup",
    normal: true,
    code: null,
    detail: "",
    stats: { codec: "opus", duration_s: 30, packets_sent: 1, packets_received: 1, packets_lost: 0, jitter_ms: 2, rtt_ms: null, mos: 4.2 },
  };
  const fields = { Nom: "Mme Carla Fichet", Contrat: "Fibre", "N° client": "C-42" };

  it("agent_state: null until told, then state, reason and since; a repeat keeps the start", () => {
    let state = initialState();
    expect(state.agent).toBeNull();
    state = reduce(state, { event: "agent_state", state: "ready", reason: null }, T0);
    expect(state.agent).toEqual({ state: "ready", reason: null, sinceMs: T0 });
    state = reduce(state, { event: "agent_state", state: "ready", reason: null }, T0 + 5000);
    expect(state.agent?.sinceMs).toBe(T0);
    state = reduce(state, { event: "agent_state", state: "not_ready", reason: "pause" }, T0 + 6000);
    expect(state.agent).toEqual({ state: "not_ready", reason: "pause", sinceMs: T0 + 6000 });
    // Another reason is another state (its time starts again).
    state = reduce(state, { event: "agent_state", state: "not_ready", reason: "formation" }, T0 + 7000);
    expect(state.agent).toEqual({ state: "not_ready", reason: "formation", sinceMs: T0 + 7000 });
    for (const name of ["on_call", "after_call_work", "logged_out"] as const) {
      state = reduce(state, { event: "agent_state", state: name, reason: "ignored" }, T0 + 8000);
      expect(state.agent).toEqual({ state: name, reason: null, sinceMs: T0 + 8000 });
    }
    // An unknown state from a newer engine changes nothing.
    expect(reduce(state, { event: "agent_state", state: "dancing", reason: null }, T0 + 9000)).toBe(state);
  });

  it("context: loading from incoming, then rows in order, or an error; outgoing calls have none", () => {
    let state = reduce(initialState(), incoming, T0);
    expect(state.calls[7]?.context).toEqual({ status: "loading" });
    const withRows = reduce(state, { event: "context", call: 7, fields }, T0 + 300);
    expect(withRows.calls[7]?.context).toEqual({
      status: "ready",
      rows: [
        ["Nom", "Mme Carla Fichet"],
        ["Contrat", "Fibre"],
        ["N° client", "C-42"],
      ],
    });
    const failed = reduce(state, { event: "context", call: 7, error: "timeout after 2 s" }, T0 + 300);
    expect(failed.calls[7]?.context).toEqual({ status: "error", message: "timeout after 2 s" });
    // Still answerable: the error does not touch the call.
    expect(reduce(failed, answered, T0 + 400).calls[7]?.status).toBe("active");
    // Neither fields nor error: an empty card.
    state = reduce(state, { event: "context", call: 7 }, T0 + 300);
    expect(state.calls[7]?.context).toEqual({ status: "ready", rows: [] });
    // Number-like labels: `rows` keeps the configured order an object loses.
    const numbered = JSON.parse('{"event":"context","call":7,"fields":{"Nom":"A","2024":"B","1":"C"},' +
      '"rows":[{"label":"Nom","value":"A"},{"label":"2024","value":"B"},{"label":"1","value":"C"}]}');
    expect(Object.keys(numbered.fields)).toEqual(["1", "2024", "Nom"]);
    expect(reduce(state, numbered, T0 + 300).calls[7]?.context).toEqual({
      status: "ready",
      rows: [["Nom", "A"], ["2024", "B"], ["1", "C"]],
    });
    // Rows that are not text are dropped, not rendered.
    const odd = { event: "context", call: 7, rows: [{ label: "Nom", value: 3 }, null, { label: "X", value: "ok" }] };
    expect(reduce(state, odd as never, T0 + 300).calls[7]?.context).toEqual({ status: "ready", rows: [["X", "ok"]] });
    // Unknown call: nothing.
    expect(reduce(state, { event: "context", call: 99, fields }, T0)).toBe(state);
    const outgoing = reduce(initialState(), { event: "calling", call: 1, to: "sip:1000@h" }, T0);
    expect(outgoing.calls[1]?.context).toBeNull();
  });

  it("an answered call that ends has an open wrap-up; an unanswered one has none", () => {
    const done = run([
      [incoming, T0],
      [answered, T0 + 1000],
      [ended, T0 + 31_000],
    ]);
    expect(done.calls[7]?.wrapup).toEqual({ status: "open" });
    expect(openWrapups(done).map((call) => call.id)).toEqual([7]);
    const missed = run([
      [incoming, T0],
      [ended, T0 + 5000],
    ]);
    expect(missed.calls[7]?.wrapup).toBeNull();
    expect(openWrapups(missed)).toEqual([]);
  });

  it("wrapup_queued closes the wrap-up with its key and clears the customer data", () => {
    let state = run([
      [incoming, T0],
      [{ event: "context", call: 7, fields }, T0 + 200],
      [answered, T0 + 1000],
      [ended, T0 + 31_000],
    ]);
    // The card stays during the wrap-up.
    expect(state.calls[7]?.context?.status).toBe("ready");
    state = reduce(state, { event: "wrapup_queued", call: 7, key: "k-1", disposition: "SALE" }, T0 + 40_000);
    expect(state.calls[7]?.wrapup).toEqual({ status: "queued", key: "k-1", disposition: "SALE" });
    expect(state.calls[7]?.context).toBeNull();
    expect(JSON.stringify(state)).not.toContain("Carla Fichet");
    expect(openWrapups(state)).toEqual([]);
    // A late context after the wrap-up does not bring customer data back.
    expect(reduce(state, { event: "context", call: 7, fields }, T0 + 41_000).calls[7]?.context).toBeNull();
  });

  it("dismissing an ended call drops its customer data, one call or all", () => {
    const state = run([
      [incoming, T0],
      [{ event: "context", call: 7, fields }, T0 + 200],
      [answered, T0 + 1000],
      [ended, T0 + 31_000],
      [{ event: "calling", call: 8, to: "sip:2000@h" }, T0 + 32_000],
    ]);
    const dismissed = dismissEnded(state, 7);
    expect(Object.keys(dismissed.calls)).toEqual(["8"]);
    expect(JSON.stringify(dismissed)).not.toContain("Carla Fichet");
    expect(dismissEnded(state, 8)).toEqual(state);
  });

  it("for an agent, a new call keeps the ended calls still to wrap up", () => {
    const events: [Event, number][] = [
      [incoming, T0],
      [answered, T0 + 1000],
      [ended, T0 + 31_000],
      [{ event: "incoming", call: 8, from: "sip:0611@h", to: "sip:agent@h" }, T0 + 40_000],
    ];
    expect(Object.keys(run(events).calls)).toEqual(["8"]);
    const agent = reduce(initialState(), { event: "agent_state", state: "ready", reason: null }, T0);
    expect(Object.keys(run(events, agent).calls).sort()).toEqual(["7", "8"]);
  });

  it("wrapup_delivered sets the pending count", () => {
    let state = reduce(initialState(), { event: "wrapup_delivered", delivered: 0, pending: 3 }, T0);
    expect(state.wrapupsPending).toBe(3);
    state = reduce(state, { event: "wrapup_delivered", delivered: 3, pending: 0 }, T0);
    expect(state.wrapupsPending).toBe(0);
  });

  it("counts the after-call work down from the end of the call", () => {
    const done = run([
      [incoming, T0],
      [answered, T0 + 1000],
      [ended, T0 + 31_000],
    ]);
    const call = done.calls[7];
    if (!call) throw new Error("call 7 missing");
    expect(wrapupSecondsLeft(call, 60, T0 + 31_000)).toBe(60);
    expect(wrapupSecondsLeft(call, 60, T0 + 41_500)).toBe(50);
    expect(wrapupSecondsLeft(call, 60, T0 + 200_000)).toBe(0);
    expect(wrapupSecondsLeft(call, null, T0 + 41_000)).toBeNull();
  });
});
