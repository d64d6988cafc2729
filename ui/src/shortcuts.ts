// Keyboard shortcuts: Ctrl+Enter answer (or call when idle), Ctrl+Shift+E hang up / decline,
// Ctrl+M mute, Ctrl+H hold/resume; for a contact-center agent Ctrl+Shift+R ready, Ctrl+Shift+P
// not ready (with the first configured reason).
import type { Command } from "./bindings";
import { normalizeDialString } from "./format";
import { focusedCall, liveCalls, ringingIncoming, type PhoneState } from "./state";

export type ShortcutAction = "answer-or-call" | "hangup-or-decline" | "mute" | "hold" | "agent-ready" | "agent-not-ready";

export type KeyLike = Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "shiftKey" | "altKey" | "metaKey">;

export function shortcutFor(event: KeyLike): ShortcutAction | null {
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return null;
  const key = event.key.toLowerCase();
  if (key === "enter" && !event.shiftKey) return "answer-or-call";
  if ((key === "e" || event.code === "KeyE") && event.shiftKey) return "hangup-or-decline";
  if ((key === "r" || event.code === "KeyR") && event.shiftKey) return "agent-ready";
  if ((key === "p" || event.code === "KeyP") && event.shiftKey) return "agent-not-ready";
  if ((key === "m" || event.code === "KeyM") && !event.shiftKey) return "mute";
  if ((key === "h" || event.code === "KeyH") && !event.shiftKey) return "hold";
  return null;
}

/**
 * The command a shortcut gives in this state, or null when it does nothing. The agent-state
 * shortcuts act only once the platform has told an agent state.
 */
export function shortcutCommand(action: ShortcutAction, state: PhoneState, dialText: string, notReadyReasons: readonly string[] = []): Command | null {
  const incoming = ringingIncoming(state);
  const focused = focusedCall(state);
  switch (action) {
    case "answer-or-call": {
      if (incoming) return { command: "answer", call: incoming.id };
      const busy = liveCalls(state).some((call) => call.status !== "held");
      const uri = normalizeDialString(dialText);
      return !busy && uri !== "" ? { command: "call", uri } : null;
    }
    case "hangup-or-decline":
      if (incoming) return { command: "decline", call: incoming.id };
      return focused ? { command: "hangup", call: focused.id } : null;
    case "mute":
      if (!focused || focused.answeredAtMs === null) return null;
      return { command: "mute", call: focused.id, muted: !focused.muted };
    case "hold":
      if (!focused || focused.answeredAtMs === null) return null;
      return focused.localHold ? { command: "resume", call: focused.id } : { command: "hold", call: focused.id };
    case "agent-ready":
      if (state.agent === null || state.agent.state === "ready") return null;
      return { command: "set_agent_state", state: "ready" };
    case "agent-not-ready": {
      if (state.agent === null || state.agent.state === "not_ready") return null;
      const reason = notReadyReasons[0];
      return reason === undefined ? { command: "set_agent_state", state: "not_ready" } : { command: "set_agent_state", state: "not_ready", reason };
    }
  }
}
