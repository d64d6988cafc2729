import { describe, expect, it } from "vitest";
import type { Event } from "./bindings";
import { formatDuration, normalizeDialString } from "./format";
import { shortcutCommand, shortcutFor, type KeyLike } from "./shortcuts";
import { initialState, reduce, type PhoneState } from "./state";

const key = (k: string, mods: Partial<KeyLike> = {}): KeyLike => ({
  key: k,
  code: "",
  ctrlKey: true,
  shiftKey: false,
  altKey: false,
  metaKey: false,
  ...mods,
});

function state(events: Event[]): PhoneState {
  return events.reduce((s, e, i) => reduce(s, e, 1000 * i), initialState());
}

const incoming: Event = { event: "incoming", call: 3, from: "sip:0612345678@h", to: "sip:agent@h" };
const answered: Event = { event: "answered", call: 3, auto: false };

describe("shortcutFor", () => {
  it("maps the call shortcuts", () => {
    expect(shortcutFor(key("Enter"))).toBe("answer-or-call");
    expect(shortcutFor(key("E", { shiftKey: true, code: "KeyE" }))).toBe("hangup-or-decline");
    expect(shortcutFor(key("m"))).toBe("mute");
    expect(shortcutFor(key("h"))).toBe("hold");
  });

  it("needs Ctrl and refuses other combinations", () => {
    expect(shortcutFor(key("Enter", { ctrlKey: false }))).toBeNull();
    expect(shortcutFor(key("e"))).toBeNull();
    expect(shortcutFor(key("m", { altKey: true }))).toBeNull();
    expect(shortcutFor(key("m", { shiftKey: true }))).toBeNull();
    expect(shortcutFor(key("x"))).toBeNull();
  });
});

describe("shortcutCommand", () => {
  it("Ctrl+Enter answers a ringing call, else calls the dialled number when idle", () => {
    expect(shortcutCommand("answer-or-call", state([incoming]), "")).toEqual({ command: "answer", call: 3 });
    expect(shortcutCommand("answer-or-call", initialState(), " 06 12-34.56 78 ")).toEqual({ command: "call", uri: "0612345678" });
    expect(shortcutCommand("answer-or-call", initialState(), "   ")).toBeNull();
    // Already in a call: no second call from the shortcut.
    expect(shortcutCommand("answer-or-call", state([incoming, answered]), "1234")).toBeNull();
    // With the only call on hold, a consultation call is allowed.
    expect(shortcutCommand("answer-or-call", state([incoming, answered, { event: "hold", call: 3, local: true }]), "2000")).toEqual({ command: "call", uri: "2000" });
  });

  it("Ctrl+Shift+E declines a ringing call or hangs up the current one", () => {
    expect(shortcutCommand("hangup-or-decline", state([incoming]), "")).toEqual({ command: "decline", call: 3 });
    expect(shortcutCommand("hangup-or-decline", state([incoming, answered]), "")).toEqual({ command: "hangup", call: 3 });
    expect(shortcutCommand("hangup-or-decline", initialState(), "")).toBeNull();
  });

  it("Ctrl+M toggles mute, Ctrl+H toggles hold, only on an answered call", () => {
    const active = state([incoming, answered]);
    expect(shortcutCommand("mute", active, "")).toEqual({ command: "mute", call: 3, muted: true });
    const muted = reduce(active, { event: "muted", call: 3, muted: true }, 9000);
    expect(shortcutCommand("mute", muted, "")).toEqual({ command: "mute", call: 3, muted: false });
    expect(shortcutCommand("hold", active, "")).toEqual({ command: "hold", call: 3 });
    const held = reduce(active, { event: "hold", call: 3, local: true }, 9000);
    expect(shortcutCommand("hold", held, "")).toEqual({ command: "resume", call: 3 });
    expect(shortcutCommand("mute", state([incoming]), "")).toBeNull();
    expect(shortcutCommand("hold", state([{ event: "calling", call: 1, to: "sip:1@h" }]), "")).toBeNull();
  });
});

describe("agent-state shortcuts", () => {
  const ready: Event = { event: "agent_state", state: "ready", reason: null };
  const paused: Event = { event: "agent_state", state: "not_ready", reason: "pause" };

  it("Ctrl+Shift+R is ready, Ctrl+Shift+P not ready; without Shift they are not", () => {
    expect(shortcutFor(key("R", { shiftKey: true, code: "KeyR" }))).toBe("agent-ready");
    expect(shortcutFor(key("P", { shiftKey: true, code: "KeyP" }))).toBe("agent-not-ready");
    expect(shortcutFor(key("r"))).toBeNull();
    expect(shortcutFor(key("p"))).toBeNull();
    expect(shortcutFor(key("R", { shiftKey: true, ctrlKey: false }))).toBeNull();
  });

  it("set the agent state, with the first not-ready reason, only once an agent state is known", () => {
    expect(shortcutCommand("agent-ready", initialState(), "", ["pause"])).toBeNull();
    expect(shortcutCommand("agent-not-ready", initialState(), "", ["pause"])).toBeNull();
    expect(shortcutCommand("agent-ready", state([paused]), "")).toEqual({ command: "set_agent_state", state: "ready" });
    expect(shortcutCommand("agent-ready", state([ready]), "")).toBeNull();
    expect(shortcutCommand("agent-not-ready", state([ready]), "", ["déjeuner", "formation"])).toEqual({
      command: "set_agent_state",
      state: "not_ready",
      reason: "déjeuner",
    });
    expect(shortcutCommand("agent-not-ready", state([ready]), "")).toEqual({ command: "set_agent_state", state: "not_ready" });
    expect(shortcutCommand("agent-not-ready", state([paused]), "", ["pause"])).toBeNull();
  });
});

describe("format", () => {
  it("formats durations", () => {
    expect(formatDuration(0)).toBe("00:00");
    expect(formatDuration(65.9)).toBe("01:05");
    expect(formatDuration(3599)).toBe("59:59");
    expect(formatDuration(3725)).toBe("1:02:05");
    expect(formatDuration(-5)).toBe("00:00");
    expect(formatDuration(Number.NaN)).toBe("00:00");
  });

  it("normalizes typed numbers but not SIP addresses", () => {
    expect(normalizeDialString("+33 (0)6 12")).toBe("+330612");
    expect(normalizeDialString("sip:bob@example.com")).toBe("sip:bob@example.com");
    expect(normalizeDialString(" 1001 ")).toBe("1001");
  });
});

describe("sparklinePoints", () => {
  it("spreads values over the width and maps MOS 1..5 to the height, clamped", async () => {
    const { sparklinePoints } = await import("./views/Quality");
    expect(sparklinePoints([], 100, 40)).toBe("");
    expect(sparklinePoints([5, 1, 3], 100, 40)).toBe("0.0,0.0 50.0,40.0 100.0,20.0");
    expect(sparklinePoints([9, -2], 10, 40)).toBe("0.0,0.0 10.0,40.0");
  });
});
