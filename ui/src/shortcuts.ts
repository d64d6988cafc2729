// Keyboard shortcuts: Ctrl+Enter answer (or call when idle), Ctrl+Shift+E hang up / decline,
// Ctrl+M mute, Ctrl+H hold/resume.
import type { Command } from "./bindings";
import { normalizeDialString } from "./format";
import { focusedCall, liveCalls, ringingIncoming, type PhoneState } from "./state";

export type ShortcutAction = "answer-or-call" | "hangup-or-decline" | "mute" | "hold";

export type KeyLike = Pick<KeyboardEvent, "key" | "code" | "ctrlKey" | "shiftKey" | "altKey" | "metaKey">;

export function shortcutFor(event: KeyLike): ShortcutAction | null {
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return null;
  const key = event.key.toLowerCase();
  if (key === "enter" && !event.shiftKey) return "answer-or-call";
  if ((key === "e" || event.code === "KeyE") && event.shiftKey) return "hangup-or-decline";
  if ((key === "m" || event.code === "KeyM") && !event.shiftKey) return "mute";
  if ((key === "h" || event.code === "KeyH") && !event.shiftKey) return "hold";
  return null;
}

/** The command a shortcut gives in this state, or null when it does nothing. */
export function shortcutCommand(action: ShortcutAction, state: PhoneState, dialText: string): Command | null {
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
  }
}
