// Types of the UI <-> Tauri shell contract (see docs: ui-contract). The lead regenerates this
// file from the Rust `api` crate (tauri-specta) with the same shapes: other files import types
// from here only, and only `backend.ts` talks to Tauri.

export type AppMode = "demo" | "live";

export type AppInfo = {
  mode: AppMode;
  version: string;
  account: string | null;
  /** OS locale, e.g. "fr-FR". */
  locale: string;
  /** Number from a tel:/sip: link given at start. */
  deep_link: string | null;
};

export type AudioDevice = {
  name: string;
  input: boolean;
  output: boolean;
  default_input: boolean;
  default_output: boolean;
};

export type Language = "fr" | "en";

export type UserSettings = {
  microphone: string | null;
  speaker: string | null;
  ringer: string | null;
  echo_cancellation: boolean;
  noise_suppression: boolean;
  gain_control: boolean;
  /** Name patterns, case-insensitive substring, first match wins. */
  preferred_devices: string[];
  /** null = follow the OS locale. */
  language: Language | null;
};

export type CallDirection = "incoming" | "outgoing";

export type CallResult = "answered" | "missed" | "declined" | "failed" | "busy" | "cancelled";

export type HistoryEntry = {
  id: number;
  started_at_ms: number;
  direction: CallDirection;
  /** Already masked by Rust except the last 4 digits. */
  number: string;
  duration_s: number;
  result: CallResult;
};

export type CallId = number;

export type Command =
  | { command: "call"; uri: string }
  | { command: "answer"; call: CallId }
  | { command: "decline"; call: CallId }
  | { command: "hangup"; call: CallId }
  | { command: "hold"; call: CallId }
  | { command: "resume"; call: CallId }
  | { command: "send_dtmf"; call: CallId; digits: string }
  | { command: "mute"; call: CallId; muted: boolean }
  | { command: "transfer"; call: CallId; target: string }
  | { command: "attended_transfer"; call: CallId; consultation: CallId }
  | { command: "shutdown" };

export type CallStats = {
  codec: string | null;
  duration_s: number;
  packets_sent: number;
  packets_received: number;
  packets_lost: number;
  jitter_ms: number;
  rtt_ms: number | null;
  mos: number | null;
};

export type ErrorCode = "bind_failed" | "bad_settings" | "audio_device" | "network" | "stopped" | "internal";

export type QualityEvent = {
  event: "quality";
  call: CallId;
  mos: number;
  local_mos: number;
  remote_mos: number | null;
  loss_percent: number;
  remote_loss_percent: number | null;
  concealed_percent: number;
  jitter_ms: number;
  rtt_ms: number | null;
  playout_delay_ms: number;
  one_way_delay_ms: number;
  fec_recovered: number;
};

export type Event =
  | { event: "ready"; sip: string }
  | { event: "registering"; registrar: string }
  | { event: "registered"; expires: number }
  | { event: "registration_failed"; code: number | null; reason: string }
  | { event: "unregistered" }
  | { event: "calling"; call: CallId; to: string }
  | { event: "incoming"; call: CallId; from: string; to: string }
  | { event: "ringing"; call: CallId }
  | { event: "answered"; call: CallId; auto: boolean }
  | { event: "established"; call: CallId; codec: string; remote_rtp: string }
  | { event: "hold"; call: CallId; local: boolean }
  | { event: "resume"; call: CallId; local: boolean }
  | { event: "muted"; call: CallId; muted: boolean }
  | { event: "dtmf"; call: CallId; digit: string }
  | { event: "dtmf_sent"; call: CallId; digits: string }
  | { event: "audio_input_ended"; call: CallId }
  | { event: "transferred"; call: CallId; target: string }
  | { event: "transfer_failed"; call: CallId; reason: string }
  | QualityEvent
  | {
      event: "ended";
      call: CallId;
      reason: string;
      normal: boolean;
      code: number | null;
      detail: string;
      stats: CallStats;
    }
  | { event: "warning"; message: string }
  | { event: "error"; code: ErrorCode; message: string }
  | { event: "stopped" };
