// The Tauri mapping, checked through Tauri's own IPC mock: the invoke names and argument objects
// are what the Rust shell must register.
import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import type { Event } from "./bindings";
import { defaultSettings, fakeBackend, runningInTauri, tauriBackend } from "./backend";

type Call = { cmd: string; args: unknown };

function recordIpc(results: Record<string, unknown> = {}): Call[] {
  const calls: Call[] = [];
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      if (cmd in results) return results[cmd];
      return null;
    },
    { shouldMockEvents: true },
  );
  return calls;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

afterEach(() => clearMocks());

describe("tauriBackend", () => {
  it("maps every method to its contract command name and arguments", async () => {
    const info = { mode: "live", version: "1.0.0", account: "a", locale: "fr-FR", deep_link: null };
    const calls = recordIpc({ app_info: info, list_devices: [], settings: defaultSettings(), history: [] });
    expect(runningInTauri()).toBe(true);
    const backend = tauriBackend();
    expect(await backend.appInfo()).toEqual(info);
    await backend.send({ command: "send_dtmf", call: 3, digits: "5" });
    await backend.devices();
    await backend.settings();
    await backend.saveSettings({ ...defaultSettings(), language: "en" });
    await backend.history();
    await backend.playTestTone("Casque");
    await backend.setLevelMeter(true);
    expect(calls.map(({ cmd, args }) => [cmd, args])).toEqual([
      ["app_info", {}],
      ["send_command", { command: { command: "send_dtmf", call: 3, digits: "5" } }],
      ["list_devices", {}],
      ["settings", {}],
      ["save_settings", { settings: { ...defaultSettings(), language: "en" } }],
      ["history", {}],
      ["play_test_tone", { device: "Casque" }],
      ["set_level_meter", { enabled: true }],
    ]);
  });

  it("rejects with the shell's error string", async () => {
    mockIPC(() => {
      throw "no such call";
    });
    await expect(tauriBackend().send({ command: "hangup", call: 1 })).rejects.toBe("no such call");
  });

  it("listens to the five contract events and stops on unsubscribe", async () => {
    recordIpc();
    const backend = tauriBackend();
    const phone: Event[] = [];
    const levels: number[] = [];
    const links: string[] = [];
    let historyChanges = 0;
    const stopPhone = backend.onPhoneEvent((event) => phone.push(event));
    backend.onInputLevel(({ dbfs }) => levels.push(dbfs));
    backend.onDeepLink(({ number }) => links.push(number));
    backend.onHistoryChanged(() => historyChanges++);
    const deviceLists: string[][] = [];
    backend.onDevicesChanged((devices) => deviceLists.push(devices.map((d) => d.name)));
    await tick();
    await emit("phone-event", { event: "registered", expires: 60 });
    await emit("input-level", { dbfs: -30 });
    await emit("deep-link", { number: "0612" });
    await emit("history-changed", null);
    await emit("devices-changed", [{ name: "usb-headset", input: false, output: true, default_input: false, default_output: false }]);
    await tick();
    expect(deviceLists).toEqual([["usb-headset"]]);
    expect(phone).toEqual([{ event: "registered", expires: 60 }]);
    expect(levels).toEqual([-30]);
    expect(links).toEqual(["0612"]);
    expect(historyChanges).toBe(1);
    stopPhone();
    await tick();
    await emit("phone-event", { event: "unregistered" });
    await tick();
    expect(phone).toHaveLength(1);
  });
});

describe("fakeBackend", () => {
  it("records commands and delivers emitted events to subscribers only", async () => {
    expect(runningInTauri()).toBe(false);
    const fake = fakeBackend();
    const seen: Event[] = [];
    const stop = fake.onPhoneEvent((event) => seen.push(event));
    await fake.send({ command: "call", uri: "1000" });
    fake.emit({ event: "unregistered" });
    stop();
    fake.emit({ event: "stopped" });
    expect(fake.commands).toEqual([{ command: "call", uri: "1000" }]);
    expect(seen).toEqual([{ event: "unregistered" }]);
    expect(fake.listenerCount()).toBe(0);
  });
});
