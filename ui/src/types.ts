// Names for parts of the contract types, derived from `bindings.ts` so that they keep working
// when that file is regenerated (generated bindings need not export these helper names).
import type { AppInfo, Event, HistoryEntry, UserSettings } from "./bindings";

export type PhoneEvent = Event;
export type EventOf<K extends Event["event"]> = Extract<Event, { event: K }>;
export type QualityReport = Omit<EventOf<"quality">, "event" | "call">;
export type CallId = EventOf<"incoming">["call"];
export type Language = NonNullable<UserSettings["language"]>;
export type CallDirection = HistoryEntry["direction"];
export type CallResult = HistoryEntry["result"];
export type ErrorCode = EventOf<"error">["code"];
export type SecretKind = AppInfo["workflow"]["secrets"][number];

/** Payload of the `input-level` event. */
export type InputLevel = { dbfs: number };
/** Payload of the `deep-link` event. */
export type DeepLink = { number: string };
