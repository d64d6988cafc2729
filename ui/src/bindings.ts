// The contract's names over the types generated from Rust (`generated/bindings.ts`, by
// tauri-specta): what the shell sends (`_Serialize`) and accepts.
import type * as Generated from "./generated/bindings";

export type AppInfo = Generated.AppInfo_Serialize;
export type AudioDevice = Generated.AudioDevice;
export type Command = Generated.Command;
export type Event = Generated.Event_Serialize;
export type HistoryEntry = Generated.HistoryEntry;
export type UserSettings = Generated.UserSettings_Serialize;
export type InputLevel = Generated.InputLevel;
export type DeepLink = Generated.DeepLink;
