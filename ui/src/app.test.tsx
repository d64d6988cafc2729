import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AppInfo, Event, HistoryEntry } from "./bindings";
import { fakeBackend, type FakeBackend } from "./backend";
import { App } from "./app";
import type { QualityReport } from "./types";

const T0 = 1_750_000_000_000;

type Setup = { fake: FakeBackend; clock: { now: number } };

async function setup(info: Partial<AppInfo> = {}, prepare: (fake: FakeBackend) => void = () => undefined): Promise<Setup> {
  const fake = fakeBackend(info);
  prepare(fake);
  const clock = { now: T0 };
  render(<App backend={fake} clock={() => clock.now} browserLanguage="fr-FR" />);
  // Wait for app_info to land (the account shows).
  await screen.findByText(fake.info.account ?? "Aucun compte");
  return { fake, clock };
}

function emit(fake: FakeBackend, ...events: Event[]) {
  act(() => {
    for (const event of events) fake.emit(event);
  });
}

function quality(call: number, overrides: Partial<QualityReport> = {}): Event {
  return {
    event: "quality",
    call,
    mos: 4.3,
    local_mos: 4.3,
    remote_mos: null,
    loss_percent: 0.5,
    remote_loss_percent: null,
    concealed_percent: 0,
    jitter_ms: 8,
    rtt_ms: 50,
    playout_delay_ms: 60,
    one_way_delay_ms: 30,
    fec_recovered: 0,
    ...overrides,
  };
}

const incoming: Event = { event: "incoming", call: 7, from: '"Jeanne Martin" <sip:+33612345678@sbc.example>', to: "<sip:agent01@sbc.example>" };

beforeEach(() => {
  vi.unstubAllGlobals();
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe("header", () => {
  it("shows the training banner in demo mode, the account and the registration state", async () => {
    const { fake } = await setup({ mode: "demo", account: "agent01@sbc.example" });
    expect(screen.getByTestId("demo-banner").textContent).toContain("MODE FORMATION");
    expect(screen.getByTestId("account-name").textContent).toBe("agent01@sbc.example");
    const pill = screen.getByTestId("registration-status");
    // The training line has no registrar: shown as ready, not as disconnected.
    expect(pill.dataset.status).toBe("training");
    expect(pill.textContent).toContain("Ligne de formation");
    emit(fake, { event: "registering", registrar: "sip:sbc.example" });
    expect(pill.dataset.status).toBe("connecting");
    expect(pill.textContent).toContain("Connexion");
    emit(fake, { event: "registered", expires: 600 });
    expect(pill.dataset.status).toBe("registered");
    expect(pill.textContent).toContain("Connecté");
    emit(fake, { event: "registration_failed", code: 403, reason: "Forbidden" });
    expect(pill.dataset.status).toBe("failed");
    expect(pill.textContent).toContain("403 Forbidden");
  });

  it("shows what happened before it started listening (registration, a ringing call)", async () => {
    await setup({ mode: "live" }, (fake) => {
      fake.pastEvents = [
        { event: "registered", expires: 600 },
        { event: "incoming", call: 4, from: '"Jean Dupont" <sip:+33612345678@pbx>', to: "sip:agent01@pbx" },
      ];
    });
    await waitFor(() => expect(screen.getByTestId("registration-status").dataset.status).toBe("registered"));
    expect((await screen.findByTestId("incoming-call")).textContent).toContain("Jean Dupont");
  });

  it("has no training banner in live mode and speaks English on an English OS", async () => {
    await setup({ mode: "live", locale: "en-US", account: "agent7" });
    expect(screen.queryByTestId("demo-banner")).toBeNull();
    expect(screen.getByTestId("registration-status").dataset.status).toBe("unregistered");
    expect(screen.getByTestId("tab-phone").textContent).toBe("Phone");
    await waitFor(() => expect(document.documentElement.lang).toBe("en"));
  });
});

describe("incoming call", () => {
  it("shows the caller and sends answer / decline for that call", async () => {
    const { fake } = await setup();
    expect(screen.queryByTestId("incoming-call")).toBeNull();
    emit(fake, incoming);
    expect(screen.getByTestId("incoming-caller-name").textContent).toBe("Jeanne Martin");
    expect(screen.getByTestId("incoming-caller-number").textContent).toBe("+33612345678");
    fireEvent.click(screen.getByTestId("answer-button"));
    await waitFor(() => expect(fake.commands).toEqual([{ command: "answer", call: 7 }]));
    fireEvent.click(screen.getByTestId("decline-button"));
    await waitFor(() => expect(fake.commands.at(-1)).toEqual({ command: "decline", call: 7 }));
  });

  it("stays on top when another tab is open", async () => {
    const { fake } = await setup();
    fireEvent.click(screen.getByTestId("tab-history"));
    emit(fake, incoming);
    expect(screen.getByTestId("answer-button")).toBeTruthy();
    expect(screen.getByTestId("panel-history")).toBeTruthy();
  });

  it("fires one desktop notification when allowed", async () => {
    const shown: { title: string; body: string | undefined }[] = [];
    class FakeNotification {
      static permission = "granted";
      static requestPermission = vi.fn(async () => "granted");
      constructor(title: string, options?: NotificationOptions) {
        shown.push({ title, body: options?.body });
      }
    }
    vi.stubGlobal("Notification", FakeNotification);
    const { fake } = await setup();
    emit(fake, incoming);
    emit(fake, { event: "ringing", call: 7 });
    expect(shown).toEqual([{ title: "Appel entrant", body: "Jeanne Martin — +33612345678" }]);
  });
});

describe("active call", () => {
  async function activeCall(): Promise<Setup> {
    const context = await setup();
    emit(context.fake, incoming, { event: "answered", call: 7, auto: false });
    return context;
  }

  it("shows the caller, the status and a timer from the answer", async () => {
    const { fake, clock } = await activeCall();
    expect(screen.queryByTestId("incoming-call")).toBeNull();
    expect(screen.getByTestId("call-remote-name").textContent).toBe("Jeanne Martin");
    expect(screen.getByTestId("call-status").textContent).toBe("En communication");
    expect(screen.getByTestId("call-timer").textContent).toBe("00:00");
    clock.now = T0 + 65_000;
    emit(fake, quality(7));
    expect(screen.getByTestId("call-timer").textContent).toBe("01:05");
  });

  it("shows quality with warnings beyond the thresholds and a MOS sparkline", async () => {
    const { fake } = await activeCall();
    expect(screen.getByTestId("quality-panel").textContent).toContain("En attente de mesure");
    emit(fake, quality(7));
    expect(screen.getByTestId("quality-mos").textContent).toContain("4.3");
    expect(screen.getByTestId("quality-panel").dataset.poor).toBe("false");
    emit(fake, quality(7, { mos: 3.1, jitter_ms: 45, rtt_ms: 120, loss_percent: 1 }));
    expect(screen.getByTestId("quality-mos").dataset.warning).toBe("true");
    expect(screen.getByTestId("quality-jitter").dataset.warning).toBe("true");
    expect(screen.getByTestId("quality-rtt").dataset.warning).toBe("false");
    expect(screen.getByTestId("quality-loss").dataset.warning).toBe("false");
    expect(screen.getByTestId("quality-jitter").textContent).toContain("45 ms");
    expect(screen.getByTestId("quality-summary").textContent).toContain("Gigue élevée");
    const line = screen.getByTestId("mos-sparkline").querySelector("polyline");
    expect(line?.getAttribute("points")?.split(" ")).toHaveLength(2);
  });

  it("hold, resume, mute, DTMF and hang up send the right commands", async () => {
    const { fake } = await activeCall();
    fireEvent.click(screen.getByTestId("hold-button"));
    emit(fake, { event: "hold", call: 7, local: true });
    expect(screen.getByTestId("call-status").textContent).toBe("En attente");
    expect(screen.getByTestId("hold-button").textContent).toBe("Reprendre");
    fireEvent.click(screen.getByTestId("hold-button"));
    fireEvent.click(screen.getByTestId("mute-button"));
    emit(fake, { event: "muted", call: 7, muted: true });
    expect(screen.getByTestId("mute-button").getAttribute("aria-pressed")).toBe("true");
    fireEvent.click(screen.getByTestId("dtmf-key-star"));
    fireEvent.click(screen.getByTestId("dtmf-key-5"));
    fireEvent.click(screen.getByTestId("dtmf-key-hash"));
    fireEvent.click(screen.getByTestId("hangup-button"));
    await waitFor(() =>
      expect(fake.commands).toEqual([
        { command: "hold", call: 7 },
        { command: "resume", call: 7 },
        { command: "mute", call: 7, muted: true },
        { command: "send_dtmf", call: 7, digits: "*" },
        { command: "send_dtmf", call: 7, digits: "5" },
        { command: "send_dtmf", call: 7, digits: "#" },
        { command: "hangup", call: 7 },
      ]),
    );
  });

  it("shows whether the audio is encrypted once the call is established", async () => {
    const { fake } = await activeCall();
    emit(fake, { event: "established", call: 7, codec: "pcmu", remote_rtp: "x", srtp: "AEAD_AES_128_GCM" });
    const badge = screen.getByTestId("call-encryption");
    expect(badge.dataset.encrypted).toBe("true");
    expect(badge.textContent).toContain("chiffré (AEAD_AES_128_GCM)");
    emit(fake, { event: "calling", call: 8, to: "sip:2000@sbc.example" }, { event: "established", call: 8, codec: "opus", remote_rtp: "x" });
    expect(screen.getByTestId("call-encryption").dataset.encrypted).toBe("false");
    expect(screen.getByTestId("call-encryption").textContent).toContain("non chiffré");
  });

  it("blind transfer sends the typed target", async () => {
    const { fake } = await activeCall();
    const button = screen.getByTestId("transfer-button") as HTMLButtonElement;
    expect(button.disabled).toBe(true);
    fireEvent.input(screen.getByTestId("transfer-input"), { target: { value: " 01 23 45 67 89" } });
    fireEvent.click(button);
    await waitFor(() => expect(fake.commands).toEqual([{ command: "transfer", call: 7, target: "0123456789" }]));
    emit(fake, { event: "transferred", call: 7, target: "0123456789" });
    expect(screen.getByTestId("transfer-status").textContent).toContain("0123456789");
  });

  it("attended transfer connects the held customer with the consultation call", async () => {
    const { fake } = await activeCall();
    emit(fake, { event: "hold", call: 7, local: true }, { event: "calling", call: 8, to: "sip:2000@sbc.example" }, { event: "established", call: 8, codec: "opus", remote_rtp: "x" });
    expect(screen.getByTestId("active-call").dataset.callId).toBe("8");
    const other = screen.getByTestId("other-call");
    expect(other.dataset.callId).toBe("7");
    expect(within(other).getByTestId("other-call-resume")).toBeTruthy();
    fireEvent.click(screen.getByTestId("attended-transfer-button"));
    await waitFor(() => expect(fake.commands).toEqual([{ command: "attended_transfer", call: 7, consultation: 8 }]));
  });

  it("shows the end of the call and lets the agent dismiss it", async () => {
    const { fake } = await activeCall();
    emit(fake, {
      event: "ended",
      call: 7,
      reason: "remote_hangup",
      normal: true,
      code: null,
      detail: "",
      stats: { codec: "opus", duration_s: 1, packets_sent: 1, packets_received: 1, packets_lost: 0, jitter_ms: 1, rtt_ms: null, mos: 4.2 },
    });
    expect(screen.queryByTestId("active-call")).toBeNull();
    expect(screen.getByTestId("call-ended").textContent).toContain("remote_hangup");
    fireEvent.click(screen.getByTestId("dismiss-ended"));
    expect(screen.queryByTestId("call-ended")).toBeNull();
  });

  it("a failing command shows an error notice", async () => {
    const { fake } = await activeCall();
    fake.failSendWith = "no such call";
    fireEvent.click(screen.getByTestId("hangup-button"));
    expect((await screen.findByTestId("notice")).textContent).toContain("no such call");
    fireEvent.click(screen.getByTestId("dismiss-notices"));
    expect(screen.queryByTestId("notice")).toBeNull();
  });
});

describe("dial pad", () => {
  it("calls the typed number", async () => {
    const { fake } = await setup();
    const call = screen.getByTestId("call-button") as HTMLButtonElement;
    expect(call.disabled).toBe(true);
    fireEvent.input(screen.getByTestId("dial-input"), { target: { value: "06 12" } });
    fireEvent.click(screen.getByTestId("dial-key-3"));
    expect((screen.getByTestId("dial-input") as HTMLInputElement).value).toBe("06 123");
    fireEvent.click(call);
    await waitFor(() => expect(fake.commands).toEqual([{ command: "call", uri: "06123" }]));
  });

  it("is pre-filled from the start deep link and from deep-link events", async () => {
    const { fake } = await setup({ deep_link: "+33198765432" });
    await waitFor(() => expect((screen.getByTestId("dial-input") as HTMLInputElement).value).toBe("+33198765432"));
    fireEvent.click(screen.getByTestId("tab-settings"));
    act(() => fake.emitDeepLink("0611223344"));
    expect(screen.getByTestId("tab-phone").getAttribute("aria-selected")).toBe("true");
    expect((screen.getByTestId("dial-input") as HTMLInputElement).value).toBe("0611223344");
  });
});

describe("history", () => {
  const entries: HistoryEntry[] = [
    { id: 2, started_at_ms: T0 - 60_000, direction: "incoming", number: "+33612345678", duration_s: 125, result: "answered" },
    { id: 1, started_at_ms: T0 - 3_600_000, direction: "outgoing", number: "••••••5678", duration_s: 0, result: "busy" },
  ];

  it("renders one row per entry with the masked number and refreshes on history-changed", async () => {
    const { fake } = await setup({}, (f) => {
      f.historyEntries = [...entries];
    });
    fireEvent.click(screen.getByTestId("tab-history"));
    const rows = await screen.findAllByTestId("history-row");
    expect(rows).toHaveLength(2);
    expect(within(rows[0]!).getByTestId("history-number").textContent).toBe("+•••••••5678");
    expect(within(rows[0]!).getByTestId("history-duration").textContent).toBe("02:05");
    expect(within(rows[0]!).getByTestId("history-result").textContent).toBe("Répondu");
    expect(within(rows[0]!).getByTestId("history-direction").textContent).toContain("Entrant");
    expect(within(rows[1]!).getByTestId("history-result").textContent).toBe("Occupé");
    fake.historyEntries = [{ id: 3, started_at_ms: T0, direction: "outgoing", number: "0699887766", duration_s: 3, result: "failed" }, ...entries];
    act(() => fake.emitHistoryChanged());
    await waitFor(() => expect(screen.getAllByTestId("history-row")).toHaveLength(3));
    expect(within(screen.getAllByTestId("history-row")[0]!).getByTestId("history-number").textContent).toBe("••••••7766");
  });

  it("says so when there is no call", async () => {
    await setup();
    fireEvent.click(screen.getByTestId("tab-history"));
    expect(screen.getByTestId("history-empty")).toBeTruthy();
  });
});

describe("settings", () => {
  it("saves the credentials the services need to the keychain in live mode only, and clears the fields", async () => {
    const { fake } = await setup({ mode: "live", account: "agent01@sbc.example" });
    fireEvent.click(screen.getByTestId("tab-settings"));
    const field = (await screen.findByTestId("settings-secret-sip")) as HTMLInputElement;
    expect(field.type).toBe("password");
    expect((screen.getByTestId("save-secret-sip") as HTMLButtonElement).disabled).toBe(true);
    fireEvent.input(field, { target: { value: "s3cret" } });
    fireEvent.click(screen.getByTestId("save-secret-sip"));
    await waitFor(() => expect(fake.secretsSaved).toEqual(["sip"]));
    await waitFor(() => expect(field.value).toBe(""));
    expect(screen.getByTestId("secret-status-sip").textContent).toContain("trousseau");
    // The CRM token (configured) has its own field; the platform's (not configured) none.
    const token = screen.getByTestId("settings-secret-context") as HTMLInputElement;
    expect(token.type).toBe("password");
    fireEvent.input(token, { target: { value: "Bearer abc" } });
    fireEvent.click(screen.getByTestId("save-secret-context"));
    await waitFor(() => expect(fake.secretsSaved).toEqual(["sip", "context"]));
    expect(screen.queryByTestId("settings-secret-platform")).toBeNull();
    cleanup();
    await setup({ mode: "demo" });
    fireEvent.click(screen.getByTestId("tab-settings"));
    await screen.findByTestId("settings-microphone");
    expect(screen.queryByTestId("settings-secret-sip")).toBeNull();
    expect(screen.queryByTestId("settings-secret-context")).toBeNull();
  });

  it("edits and saves the audio settings, runs the level meter only while open", async () => {
    const { fake } = await setup();
    fireEvent.click(screen.getByTestId("tab-settings"));
    const mic = (await screen.findByTestId("settings-microphone")) as HTMLSelectElement;
    expect(fake.levelMeterCalls).toEqual([true]);
    // Inputs only for the microphone, outputs for the speaker.
    expect(Array.from(mic.options).map((o) => o.value)).toEqual(["", "Micro-casque USB"]);
    const speaker = screen.getByTestId("settings-speaker") as HTMLSelectElement;
    expect(Array.from(speaker.options).map((o) => o.value)).toEqual(["", "Micro-casque USB", "Haut-parleurs intégrés"]);

    act(() => fake.emitInputLevel(-23.4));
    expect((screen.getByTestId("input-level") as HTMLMeterElement).value).toBeCloseTo(-23.4);
    expect(screen.getByTestId("input-level-value").textContent).toBe("-23 dBFS");

    fireEvent.change(mic, { target: { value: "Micro-casque USB" } });
    fireEvent.change(speaker, { target: { value: "Haut-parleurs intégrés" } });
    fireEvent.click(screen.getByTestId("settings-echo"));
    fireEvent.input(screen.getByTestId("preferred-device-input"), { target: { value: "Jabra" } });
    fireEvent.click(screen.getByTestId("preferred-device-add"));
    fireEvent.input(screen.getByTestId("preferred-device-input"), { target: { value: "USB" } });
    fireEvent.click(screen.getByTestId("preferred-device-add"));
    fireEvent.click(screen.getAllByTestId("preferred-device-up")[1]!);
    expect(screen.getAllByTestId("preferred-device-row").map((row) => row.textContent)).toEqual(["USB↑✕", "Jabra↑✕"]);
    fireEvent.change(screen.getByTestId("settings-language"), { target: { value: "en" } });
    fireEvent.click(screen.getByTestId("test-tone"));
    expect(fake.testTones).toEqual(["Haut-parleurs intégrés"]);
    fireEvent.click(screen.getByTestId("save-settings"));

    await waitFor(() => expect(fake.savedSettings).toHaveLength(1));
    expect(fake.savedSettings[0]).toEqual({
      microphone: "Micro-casque USB",
      speaker: "Haut-parleurs intégrés",
      ringer: null,
      echo_cancellation: false,
      noise_suppression: true,
      gain_control: true,
      preferred_devices: ["USB", "Jabra"],
      language: "en",
    });
    // The saved language applies at once.
    await waitFor(() => expect(screen.getByTestId("tab-phone").textContent).toBe("Phone"));
    expect(screen.getByTestId("settings-status").textContent).toBe("Settings saved.");

    fireEvent.click(screen.getByTestId("tab-phone"));
    expect(fake.levelMeterCalls).toEqual([true, false]);
  });
});

describe("device changes", () => {
  it("the device lists follow a headset plugged in and pulled out while settings are open", async () => {
    const { fake } = await setup();
    fireEvent.click(screen.getByTestId("tab-settings"));
    const mic = (await screen.findByTestId("settings-microphone")) as HTMLSelectElement;
    const names = () => Array.from(mic.options).map((o) => o.value);
    expect(names()).toEqual(["", "Micro-casque USB"]);
    const jabra = { name: "Jabra Evolve2", input: true, output: true, default_input: false, default_output: false };
    act(() => fake.emitDevicesChanged([...fake.deviceList, jabra]));
    await waitFor(() => expect(names()).toEqual(["", "Micro-casque USB", "Jabra Evolve2"]));
    act(() => fake.emitDevicesChanged(fake.deviceList.filter((d) => d.name !== "Jabra Evolve2")));
    await waitFor(() => expect(names()).toEqual(["", "Micro-casque USB"]));
    fireEvent.click(screen.getByTestId("tab-phone"));
    expect(fake.listenerCount()).toBeGreaterThan(0);
  });
});

describe("keyboard shortcuts", () => {
  const press = (key: string, mods: { shiftKey?: boolean } = {}) =>
    fireEvent.keyDown(window, { key, ctrlKey: true, code: `Key${key.toUpperCase()}`, ...mods });

  it("answer, mute, hold and hang up from the keyboard", async () => {
    const { fake } = await setup();
    emit(fake, incoming);
    press("Enter");
    emit(fake, { event: "answered", call: 7, auto: false });
    press("m");
    press("h");
    press("E", { shiftKey: true });
    await waitFor(() =>
      expect(fake.commands).toEqual([
        { command: "answer", call: 7 },
        { command: "mute", call: 7, muted: true },
        { command: "hold", call: 7 },
        { command: "hangup", call: 7 },
      ]),
    );
  });

  it("Ctrl+Enter calls the dialled number when idle and Ctrl+Shift+E declines a ringing call", async () => {
    const { fake } = await setup();
    fireEvent.input(screen.getByTestId("dial-input"), { target: { value: "3000" } });
    press("Enter");
    emit(fake, { event: "incoming", call: 9, from: "sip:555@h", to: "sip:agent@h" });
    press("E", { shiftKey: true });
    await waitFor(() =>
      expect(fake.commands).toEqual([
        { command: "call", uri: "3000" },
        { command: "decline", call: 9 },
      ]),
    );
    expect(screen.getByTestId("shortcuts-help").textContent).toContain("Ctrl+M");
  });
});

describe("lifecycle", () => {
  it("unsubscribes from every event when unmounted", async () => {
    const { fake } = await setup();
    expect(fake.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(fake.listenerCount()).toBe(0);
  });
});

describe("more states", () => {
  it("arrow keys move between tabs", async () => {
    await setup();
    const phoneTab = screen.getByTestId("tab-phone");
    fireEvent.keyDown(phoneTab, { key: "ArrowRight" });
    expect(screen.getByTestId("tab-history").getAttribute("aria-selected")).toBe("true");
    expect(screen.getByTestId("panel-history")).toBeTruthy();
    fireEvent.keyDown(screen.getByTestId("tab-history"), { key: "ArrowLeft" });
    fireEvent.keyDown(screen.getByTestId("tab-phone"), { key: "ArrowLeft" });
    expect(screen.getByTestId("tab-settings").getAttribute("aria-selected")).toBe("true");
  });

  it("hides the dial keys and disables Call during a call, not while it is on hold", async () => {
    const { fake } = await setup();
    expect(screen.getByTestId("dial-key-1")).toBeTruthy();
    emit(fake, incoming, { event: "answered", call: 7, auto: false });
    expect(screen.queryByTestId("dial-key-1")).toBeNull();
    fireEvent.input(screen.getByTestId("dial-input"), { target: { value: "2000" } });
    expect((screen.getByTestId("call-button") as HTMLButtonElement).disabled).toBe(true);
    emit(fake, { event: "hold", call: 7, local: true });
    expect((screen.getByTestId("call-button") as HTMLButtonElement).disabled).toBe(false);
  });

  it("shows engine errors with a translated label, and a stopped phone", async () => {
    const { fake } = await setup();
    emit(fake, { event: "error", code: "audio_device", message: "no capture device" }, { event: "warning", message: "clock skew" });
    const notices = screen.getAllByTestId("notice").map((n) => n.textContent);
    expect(notices).toEqual(["Problème d'appareil audio : no capture device", "clock skew"]);
    emit(fake, { event: "stopped" });
    expect(screen.getByTestId("registration-status").dataset.status).toBe("stopped");
  });

  it("counts the other calls waiting and titles the window while ringing", async () => {
    const { fake } = await setup();
    emit(fake, incoming, { event: "incoming", call: 8, from: "sip:0700000000@h", to: "sip:agent@h" });
    expect(screen.getByTestId("incoming-call").dataset.callId).toBe("7");
    expect(screen.getByTestId("incoming-call").textContent).toContain("1 autre(s) appel(s) en attente");
    await waitFor(() => expect(document.title).toBe("Appel entrant — Jeanne Martin"));
    emit(fake, { event: "answered", call: 7, auto: false });
    expect(screen.getByTestId("incoming-call").dataset.callId).toBe("8");
    emit(fake, { event: "answered", call: 8, auto: false });
    await waitFor(() => expect(document.title).toBe("Homeagent"));
  });

  it("an outgoing call being set up can be cancelled but not held", async () => {
    const { fake } = await setup();
    emit(fake, { event: "calling", call: 4, to: '"Support" <sip:3000@h>' });
    expect(screen.getByTestId("call-status").textContent).toBe("Appel en cours de numérotation…");
    emit(fake, { event: "ringing", call: 4 });
    expect(screen.getByTestId("call-status").dataset.status).toBe("ringing");
    expect((screen.getByTestId("hold-button") as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId("hangup-button").textContent).toBe("Annuler l'appel");
    fireEvent.click(screen.getByTestId("hangup-button"));
    await waitFor(() => expect(fake.commands).toEqual([{ command: "hangup", call: 4 }]));
  });
});

describe("contact-center workflow", () => {
  const endedEvent = (call: number): Event => ({
    event: "ended",
    call,
    reason: "remote_hangup",
    normal: true,
    code: null,
    detail: "",
    stats: { codec: "opus", duration_s: 42, packets_sent: 1, packets_received: 1, packets_lost: 0, jitter_ms: 3, rtt_ms: null, mos: 4.3 },
  });
  const fields = { Nom: "Mme Carla Fichet", "N° client": "C-1042", Contrat: "Fibre Pro" };

  async function agentSetup(info: Partial<AppInfo> = {}): Promise<Setup> {
    const context = await setup({
      workflow: {
        secrets: [],
        not_ready_reasons: ["déjeuner", "formation"],
        dispositions: [
          { code: "SALE", label: "Vente conclue" },
          { code: "INFO", label: "Demande d'information" },
          { code: "CB", label: "Rappel programmé" },
        ],
        wrapup_seconds: 60,
      },
      ...info,
    });
    emit(context.fake, { event: "agent_state", state: "ready", reason: null });
    return context;
  }

  async function wrapupOpen(info: Partial<AppInfo> = {}): Promise<Setup> {
    const context = await agentSetup(info);
    emit(context.fake, incoming, { event: "context", call: 7, fields }, { event: "answered", call: 7, auto: true });
    context.clock.now = T0 + 30_000;
    emit(context.fake, endedEvent(7), { event: "agent_state", state: "after_call_work", reason: null });
    return context;
  }

  it("has no agent bar until the platform tells a state", async () => {
    const { fake } = await setup();
    expect(screen.queryByTestId("agent-bar")).toBeNull();
    emit(fake, { event: "agent_state", state: "not_ready", reason: "déjeuner" });
    const pill = screen.getByTestId("agent-state");
    expect(pill.dataset.state).toBe("not_ready");
    // `data-status` too, as the other status pills (the desktop e2e test waits on it).
    expect(pill.dataset.status).toBe("not_ready");
    expect(pill.textContent).toBe("En pause (déjeuner)");
  });

  it("the agent bar shows the state, a ticking time in state and sends state changes", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const { fake, clock } = await agentSetup();
      expect(screen.getByTestId("agent-state").dataset.state).toBe("ready");
      expect(screen.getByTestId("agent-state").textContent).toBe("Prêt");
      expect(screen.getByTestId("agent-time").textContent).toBe("00:00");
      clock.now = T0 + 75_000;
      act(() => {
        vi.advanceTimersByTime(1000);
      });
      expect(screen.getByTestId("agent-time").textContent).toBe("01:15");

      fireEvent.click(screen.getByTestId("agent-not-ready"));
      fireEvent.change(screen.getByTestId("agent-reason"), { target: { value: "formation" } });
      fireEvent.click(screen.getByTestId("agent-not-ready"));
      fireEvent.click(screen.getByTestId("agent-ready"));
      fireEvent.click(screen.getByTestId("agent-logout"));
      await waitFor(() =>
        expect(fake.agentStateCommands).toEqual([
          { command: "set_agent_state", state: "not_ready", reason: "déjeuner" },
          { command: "set_agent_state", state: "not_ready", reason: "formation" },
          { command: "set_agent_state", state: "ready" },
          { command: "set_agent_state", state: "logged_out" },
        ]),
      );
      // The state follows the events, not the clicks; its time starts again.
      emit(fake, { event: "agent_state", state: "logged_out", reason: null });
      expect(screen.getByTestId("agent-state").dataset.state).toBe("logged_out");
      expect(screen.getByTestId("agent-state").textContent).toBe("Déconnecté");
      expect(screen.getByTestId("agent-time").textContent).toBe("00:00");
      expect((screen.getByTestId("agent-logout") as HTMLButtonElement).disabled).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("Ctrl+Shift+P pauses with the first reason, Ctrl+Shift+R makes the agent ready", async () => {
    const { fake } = await agentSetup();
    fireEvent.keyDown(window, { key: "P", code: "KeyP", ctrlKey: true, shiftKey: true });
    await waitFor(() => expect(fake.commands).toEqual([{ command: "set_agent_state", state: "not_ready", reason: "déjeuner" }]));
    emit(fake, { event: "agent_state", state: "not_ready", reason: "déjeuner" });
    fireEvent.keyDown(window, { key: "R", code: "KeyR", ctrlKey: true, shiftKey: true });
    await waitFor(() => expect(fake.commands.at(-1)).toEqual({ command: "set_agent_state", state: "ready" }));
  });

  it("the customer card goes from loading to its rows, in order, beside the incoming call", async () => {
    const { fake } = await agentSetup();
    emit(fake, incoming);
    const card = screen.getByTestId("customer-card");
    expect(screen.getByTestId("customer-card-loading").textContent).toBe("Recherche du client…");
    expect(card.getAttribute("aria-busy")).toBe("true");
    emit(fake, { event: "context", call: 7, fields });
    expect(screen.queryByTestId("customer-card-loading")).toBeNull();
    const rows = screen.getAllByTestId("customer-field");
    expect(rows.map((row) => row.dataset.label)).toEqual(["Nom", "N° client", "Contrat"]);
    expect(rows.map((row) => [row.querySelector("dt")?.textContent, row.querySelector("dd")?.textContent])).toEqual([
      ["Nom", "Mme Carla Fichet"],
      ["N° client", "C-1042"],
      ["Contrat", "Fibre Pro"],
    ]);
    // Still there once answered, beside the call controls.
    emit(fake, { event: "answered", call: 7, auto: false });
    expect(screen.getByTestId("active-call")).toBeTruthy();
    expect(screen.getAllByTestId("customer-field")).toHaveLength(3);
  });

  it("a CRM error shows 'Contexte indisponible' and never blocks answering", async () => {
    const { fake } = await agentSetup();
    emit(fake, incoming, { event: "context", call: 7, error: "timeout after 2 s" });
    expect(screen.getByTestId("customer-card-error").textContent).toBe("Contexte indisponible");
    expect(screen.queryAllByTestId("customer-field")).toHaveLength(0);
    const answer = screen.getByTestId("answer-button") as HTMLButtonElement;
    expect(answer.disabled).toBe(false);
    fireEvent.click(answer);
    await waitFor(() => expect(fake.commands).toEqual([{ command: "answer", call: 7 }]));
  });

  it("in English the error reads 'Context unavailable'", async () => {
    const { fake } = await agentSetup({ locale: "en-GB" });
    emit(fake, incoming, { event: "context", call: 7, error: "crm down" });
    await waitFor(() => expect(screen.getByTestId("customer-card-error").textContent).toBe("Context unavailable"));
  });

  it("without a contact-center setup, no card waits for a context that never comes", async () => {
    const { fake } = await setup({ workflow: { not_ready_reasons: [], dispositions: [], wrapup_seconds: null, secrets: [] } });
    emit(fake, incoming);
    expect(screen.queryByTestId("customer-card")).toBeNull();
    emit(fake, { event: "context", call: 7, fields });
    expect(screen.getAllByTestId("customer-field")).toHaveLength(3);
  });

  it("renders CRM data as text: markup shows literally and never runs", async () => {
    const { fake } = await agentSetup();
    const payload = '<img src=x onerror="window.__xss=1">';
    emit(fake, incoming, { event: "context", call: 7, fields: { Nom: payload, [`<b>${payload}</b>`]: "<script>window.__xss=2</script>" } });
    const card = screen.getByTestId("customer-card");
    const rows = screen.getAllByTestId("customer-field");
    expect(rows[0]?.querySelector("dd")?.textContent).toBe(payload);
    expect(rows[1]?.querySelector("dt")?.textContent).toBe(`<b>${payload}</b>`);
    expect(rows[1]?.dataset.label).toBe(`<b>${payload}</b>`);
    expect(card.textContent).toContain(payload);
    expect(card.querySelector("img")).toBeNull();
    expect(card.querySelector("b")).toBeNull();
    expect(card.querySelector("script")).toBeNull();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((window as { __xss?: unknown }).__xss).toBeUndefined();
  });

  it("wrap-up: filter, pick, note and submit send the command; wrapup_queued closes it", async () => {
    const { fake } = await wrapupOpen();
    const form = screen.getByTestId("wrapup");
    expect(form.dataset.callId).toBe("7");
    // The card stays beside the form during the wrap-up.
    expect(screen.getAllByTestId("customer-field")).toHaveLength(3);
    const submit = screen.getByTestId("wrapup-submit") as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    const select = screen.getByTestId("wrapup-disposition") as HTMLSelectElement;
    const labels = () => [...select.options].filter((option) => option.value !== "").map((option) => option.textContent);
    expect(labels()).toEqual(["Vente conclue", "Demande d'information", "Rappel programmé"]);
    // Case- and accent-insensitive filter on the label (or the code).
    fireEvent.input(screen.getByTestId("wrapup-filter"), { target: { value: "PROGRAMME" } });
    expect(labels()).toEqual(["Rappel programmé"]);
    fireEvent.input(screen.getByTestId("wrapup-filter"), { target: { value: "zzz" } });
    expect(labels()).toEqual([]);
    expect(select.textContent).toContain("Aucune qualification ne correspond");
    fireEvent.input(screen.getByTestId("wrapup-filter"), { target: { value: "info" } });
    expect(labels()).toEqual(["Demande d'information"]);
    fireEvent.change(select, { target: { value: "INFO" } });
    expect(submit.disabled).toBe(false);
    fireEvent.input(screen.getByTestId("wrapup-note"), { target: { value: "Rappeler <lundi> & envoyer devis" } });
    fireEvent.click(submit);
    await waitFor(() =>
      expect(fake.wrapupCommands).toEqual([{ command: "wrapup", call: 7, disposition: "INFO", note: "Rappeler <lundi> & envoyer devis" }]),
    );
    expect(fake.commands.at(-1)).toEqual({ command: "wrapup", call: 7, disposition: "INFO", note: "Rappeler <lundi> & envoyer devis" });
    // No double submit while it is being stored.
    expect(submit.disabled).toBe(true);
    expect(screen.getByTestId("wrapup")).toBeTruthy();

    emit(fake, { event: "wrapup_queued", call: 7, key: "homeagent-7-abc", disposition: "INFO" });
    expect(screen.queryByTestId("wrapup")).toBeNull();
    expect(screen.getByTestId("wrapup-saved").textContent).toBe("Qualification enregistrée");
    // The customer's data is gone from the screen.
    expect(screen.queryByTestId("customer-card")).toBeNull();
    expect(document.body.textContent).not.toContain("Carla Fichet");
  });

  it("a refused wrap-up can be submitted again", async () => {
    const { fake } = await wrapupOpen();
    fake.failSendWith = "outbox unavailable";
    fireEvent.change(screen.getByTestId("wrapup-disposition"), { target: { value: "SALE" } });
    fireEvent.click(screen.getByTestId("wrapup-submit"));
    expect(await screen.findByText(/outbox unavailable/)).toBeTruthy();
    await waitFor(() => expect((screen.getByTestId("wrapup-submit") as HTMLButtonElement).disabled).toBe(false));
    fake.failSendWith = null;
    fireEvent.click(screen.getByTestId("wrapup-submit"));
    await waitFor(() => expect(fake.wrapupCommands).toHaveLength(2));
  });

  it("a filter that hides the chosen disposition unselects it", async () => {
    await wrapupOpen();
    fireEvent.change(screen.getByTestId("wrapup-disposition"), { target: { value: "SALE" } });
    expect((screen.getByTestId("wrapup-submit") as HTMLButtonElement).disabled).toBe(false);
    fireEvent.input(screen.getByTestId("wrapup-filter"), { target: { value: "rappel" } });
    expect((screen.getByTestId("wrapup-submit") as HTMLButtonElement).disabled).toBe(true);
  });

  it("counts the after-call work down from the end of the call", async () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    try {
      const { clock } = await wrapupOpen();
      const countdown = screen.getByTestId("wrapup-countdown");
      expect(countdown.textContent).toBe("01:00");
      clock.now = T0 + 30_000 + 15_000;
      act(() => {
        vi.advanceTimersByTime(1000);
      });
      expect(screen.getByTestId("wrapup-countdown").textContent).toBe("00:45");
      clock.now = T0 + 30_000 + 120_000;
      act(() => {
        vi.advanceTimersByTime(1000);
      });
      expect(screen.getByTestId("wrapup-countdown").textContent).toBe("00:00");
      expect(screen.getByTestId("wrapup-countdown").dataset.seconds).toBe("0");
      // The form stays: a late wrap-up is still better than none.
      expect(screen.getByTestId("wrapup")).toBeTruthy();
    } finally {
      vi.useRealTimers();
    }
  });

  it("has no countdown without an after-call work limit", async () => {
    await wrapupOpen({
      workflow: { not_ready_reasons: [], dispositions: [{ code: "OK", label: "Traité" }], wrapup_seconds: null, secrets: [] },
    });
    expect(screen.getByTestId("wrapup")).toBeTruthy();
    expect(screen.queryByTestId("wrapup-countdown")).toBeNull();
  });

  it("no wrap-up for a call never answered", async () => {
    const { fake } = await agentSetup();
    emit(fake, incoming, endedEvent(7));
    expect(screen.queryByTestId("wrapup")).toBeNull();
  });

  it("dismissing the wrap-up drops the ended call and its customer data", async () => {
    await wrapupOpen();
    expect(document.body.textContent).toContain("Carla Fichet");
    fireEvent.click(screen.getByTestId("wrapup-dismiss"));
    expect(screen.queryByTestId("wrapup")).toBeNull();
    expect(screen.queryByTestId("call-ended")).toBeNull();
    expect(document.body.textContent).not.toContain("Carla Fichet");
  });

  it("the wrap-up of the last call stays open when the next call rings", async () => {
    const { fake } = await wrapupOpen();
    emit(fake, { event: "incoming", call: 8, from: "sip:0700000000@h", to: "sip:agent@h" });
    expect(screen.getByTestId("incoming-call")).toBeTruthy();
    expect(screen.getByTestId("wrapup").dataset.callId).toBe("7");
  });

  it("shows the wrap-ups waiting for delivery", async () => {
    const { fake } = await agentSetup();
    expect(screen.queryByTestId("wrapups-pending")).toBeNull();
    emit(fake, { event: "wrapup_delivered", delivered: 0, pending: 3 });
    expect(screen.getByTestId("wrapups-pending").textContent).toBe("3 qualifications en attente d'envoi");
    emit(fake, { event: "wrapup_delivered", delivered: 2, pending: 1 });
    expect(screen.getByTestId("wrapups-pending").textContent).toBe("1 qualification en attente d'envoi");
    emit(fake, { event: "wrapup_delivered", delivered: 1, pending: 0 });
    expect(screen.queryByTestId("wrapups-pending")).toBeNull();
  });

  it("never writes customer data to localStorage or sessionStorage", async () => {
    localStorage.clear();
    sessionStorage.clear();
    const writes: string[] = [];
    const setItem = vi.spyOn(Storage.prototype, "setItem").mockImplementation(function (this: Storage, key: string) {
      writes.push(key);
    });
    try {
      const { fake } = await wrapupOpen();
      emit(fake, { event: "context", call: 7, fields });
      fireEvent.change(screen.getByTestId("wrapup-disposition"), { target: { value: "SALE" } });
      fireEvent.input(screen.getByTestId("wrapup-note"), { target: { value: "note client" } });
      fireEvent.click(screen.getByTestId("wrapup-submit"));
      emit(fake, { event: "wrapup_queued", call: 7, key: "k", disposition: "SALE" });
      expect(writes).toEqual([]);
      expect(localStorage.length).toBe(0);
      expect(sessionStorage.length).toBe(0);
    } finally {
      setItem.mockRestore();
    }
  });
});
