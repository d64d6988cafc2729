// The only file that talks to the Tauri shell. Command and event names follow the UI <-> shell
// contract; `fakeBackend` stands in for it in unit tests and in a plain browser (`npm run dev`).
import { invoke, isTauri } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import type { AppInfo, AudioDevice, Command, Event, HistoryEntry, UserSettings } from "./bindings";
import type { DeepLink, InputLevel, SecretKind } from "./types";

export type Unsubscribe = () => void;

export interface Backend {
  appInfo(): Promise<AppInfo>;
  send(command: Command): Promise<void>;
  devices(): Promise<AudioDevice[]>;
  settings(): Promise<UserSettings>;
  saveSettings(settings: UserSettings): Promise<void>;
  /** Stores the account's SIP password in the OS keychain (never in a file). */
  /** Stores a credential in the OS keychain (an empty value deletes it). */
  saveSecret(kind: SecretKind, value: string): Promise<void>;
  history(): Promise<HistoryEntry[]>;
  /** The events that rebuild the current state (registration, calls in progress). */
  recentEvents(): Promise<Event[]>;
  playTestTone(device: string | null): Promise<void>;
  setLevelMeter(enabled: boolean): Promise<void>;
  onPhoneEvent(callback: (event: Event) => void): Unsubscribe;
  onHistoryChanged(callback: () => void): Unsubscribe;
  onInputLevel(callback: (level: InputLevel) => void): Unsubscribe;
  onDeepLink(callback: (link: DeepLink) => void): Unsubscribe;
  /** The sound devices changed (a headset plugged in or pulled out): the new list. */
  onDevicesChanged(callback: (devices: AudioDevice[]) => void): Unsubscribe;
}

/** Tauri command names (`invoke`). */
export const COMMANDS = {
  appInfo: "app_info",
  send: "send_command",
  devices: "list_devices",
  settings: "settings",
  saveSettings: "save_settings",
  saveSecret: "save_secret",
  history: "history",
  recentEvents: "recent_events",
  playTestTone: "play_test_tone",
  setLevelMeter: "set_level_meter",
} as const;

/** Tauri event names (`listen`). */
export const EVENTS = {
  phone: "phone-event",
  historyChanged: "history-changed",
  inputLevel: "input-level",
  deepLink: "deep-link",
  devicesChanged: "devices-changed",
} as const;

export function runningInTauri(): boolean {
  try {
    if (isTauri()) return true;
    // Tauri's IPC bridge (also what `@tauri-apps/api/mocks` installs).
    const internals = (globalThis as { __TAURI_INTERNALS__?: { invoke?: unknown } }).__TAURI_INTERNALS__;
    return typeof internals?.invoke === "function";
  } catch {
    return false;
  }
}

export function tauriBackend(): Backend {
  return {
    appInfo: () => invoke<AppInfo>(COMMANDS.appInfo),
    send: async (command) => {
      await invoke<null>(COMMANDS.send, { command });
    },
    devices: () => invoke<AudioDevice[]>(COMMANDS.devices),
    settings: () => invoke<UserSettings>(COMMANDS.settings),
    saveSecret: async (kind, value) => {
      await invoke<null>(COMMANDS.saveSecret, { kind, value });
    },
    saveSettings: async (settings) => {
      await invoke<null>(COMMANDS.saveSettings, { settings });
    },
    history: () => invoke<HistoryEntry[]>(COMMANDS.history),
    recentEvents: () => invoke<Event[]>(COMMANDS.recentEvents),
    playTestTone: async (device) => {
      await invoke<null>(COMMANDS.playTestTone, { device });
    },
    setLevelMeter: async (enabled) => {
      await invoke<null>(COMMANDS.setLevelMeter, { enabled });
    },
    onPhoneEvent: (callback) => subscribe<Event>(EVENTS.phone, callback),
    onHistoryChanged: (callback) => subscribe<unknown>(EVENTS.historyChanged, () => callback()),
    onInputLevel: (callback) => subscribe<InputLevel>(EVENTS.inputLevel, callback),
    onDeepLink: (callback) => subscribe<DeepLink>(EVENTS.deepLink, callback),
    onDevicesChanged: (callback) => subscribe<AudioDevice[]>(EVENTS.devicesChanged, callback),
  };
}

/** `listen` is asynchronous; the returned function also works before it has resolved. */
function subscribe<T>(name: string, callback: (payload: T) => void): Unsubscribe {
  let active = true;
  const pending = listen<T>(name, (event) => {
    if (active) callback(event.payload);
  });
  return () => {
    active = false;
    pending.then((unlisten) => unlisten()).catch(() => undefined);
  };
}

export type FakeBackend = Backend & {
  /** Every command given to `send`, in order. */
  readonly commands: Command[];
  /** The `set_agent_state` commands among them, in order. */
  readonly agentStateCommands: Extract<Command, { command: "set_agent_state" }>[];
  /** The `wrapup` commands among them, in order. */
  readonly wrapupCommands: Extract<Command, { command: "wrapup" }>[];
  readonly savedSettings: UserSettings[];
  readonly testTones: (string | null)[];
  /** Every `setLevelMeter` argument, in order. */
  readonly levelMeterCalls: boolean[];
  info: AppInfo;
  deviceList: AudioDevice[];
  currentSettings: UserSettings;
  historyEntries: HistoryEntry[];
  /** What `recentEvents` answers (events that happened before the UI started). */
  pastEvents: Event[];
  /** The kinds of the credentials saved, in order (never the values themselves). */
  secretsSaved: SecretKind[];
  /** When set, `send` rejects with this message (as Tauri does with a string). */
  failSendWith: string | null;
  emit(event: Event): void;
  emitHistoryChanged(): void;
  emitInputLevel(dbfs: number): void;
  emitDeepLink(number: string): void;
  /** Replaces `deviceList` and tells the subscribers, as a plugged-in headset does. */
  emitDevicesChanged(devices: AudioDevice[]): void;
  /** Number of live subscriptions per kind (to test that views unsubscribe). */
  listenerCount(): number;
};

export function defaultSettings(): UserSettings {
  return {
    microphone: null,
    speaker: null,
    ringer: null,
    echo_cancellation: true,
    noise_suppression: true,
    gain_control: true,
    preferred_devices: [],
    language: null,
  };
}

export function fakeBackend(overrides: Partial<AppInfo> = {}): FakeBackend {
  const phone = new Set<(event: Event) => void>();
  const history = new Set<() => void>();
  const level = new Set<(level: InputLevel) => void>();
  const deepLink = new Set<(link: DeepLink) => void>();
  const devicesChanged = new Set<(devices: AudioDevice[]) => void>();
  const add = <T>(set: Set<T>, callback: T): Unsubscribe => {
    set.add(callback);
    return () => {
      set.delete(callback);
    };
  };
  const fake: FakeBackend = {
    commands: [],
    agentStateCommands: [],
    wrapupCommands: [],
    savedSettings: [],
    secretsSaved: [],
    testTones: [],
    levelMeterCalls: [],
    info: {
      mode: "demo",
      version: "0.0.0-dev",
      account: "agent01@demo.invalid",
      locale: "fr-FR",
      deep_link: null,
      workflow: {
        not_ready_reasons: ["pause", "formation"],
        dispositions: [
          { code: "SALE", label: "Vente" },
          { code: "INFO", label: "Demande d'information" },
        ],
        wrapup_seconds: 60,
        secrets: ["sip", "context"],
      },
      ...overrides,
    },
    deviceList: [
      { name: "Micro-casque USB", input: true, output: true, default_input: true, default_output: false },
      { name: "Haut-parleurs intégrés", input: false, output: true, default_input: false, default_output: true },
    ],
    currentSettings: defaultSettings(),
    historyEntries: [],
    pastEvents: [],
    failSendWith: null,
    appInfo: async () => ({ ...fake.info }),
    send: async (command) => {
      fake.commands.push(command);
      if (command.command === "set_agent_state") fake.agentStateCommands.push({ ...command });
      if (command.command === "wrapup") fake.wrapupCommands.push({ ...command });
      if (fake.failSendWith !== null) throw fake.failSendWith;
    },
    devices: async () => fake.deviceList.map((device) => ({ ...device })),
    settings: async () => clone(fake.currentSettings),
    saveSecret: async (kind) => {
      fake.secretsSaved.push(kind);
    },
    saveSettings: async (settings) => {
      fake.savedSettings.push(clone(settings));
      fake.currentSettings = clone(settings);
    },
    history: async () => fake.historyEntries.map((entry) => ({ ...entry })),
    recentEvents: async () => fake.pastEvents.map((event) => ({ ...event })),
    playTestTone: async (device) => {
      fake.testTones.push(device);
    },
    setLevelMeter: async (enabled) => {
      fake.levelMeterCalls.push(enabled);
    },
    onPhoneEvent: (callback) => add(phone, callback),
    onHistoryChanged: (callback) => add(history, callback),
    onInputLevel: (callback) => add(level, callback),
    onDeepLink: (callback) => add(deepLink, callback),
    onDevicesChanged: (callback) => add(devicesChanged, callback),
    emit: (event) => phone.forEach((callback) => callback(event)),
    emitHistoryChanged: () => history.forEach((callback) => callback()),
    emitInputLevel: (dbfs) => level.forEach((callback) => callback({ dbfs })),
    emitDeepLink: (number) => deepLink.forEach((callback) => callback({ number })),
    emitDevicesChanged: (devices) => {
      fake.deviceList = devices.map((device) => ({ ...device }));
      devicesChanged.forEach((callback) => callback(devices.map((device) => ({ ...device }))));
    },
    listenerCount: () => phone.size + history.size + level.size + deepLink.size + devicesChanged.size,
  };
  return fake;
}

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
