// A scripted training line for `npm run dev` in a plain browser (no Tauri): it answers the
// commands with the events the Rust engine would send. Not used inside the app.
import type { Command, Event } from "./bindings";
import type { FakeBackend } from "./backend";
import type { CallResult } from "./types";

type SimCall = { id: number; direction: "incoming" | "outgoing"; number: string; answeredAt: number | null; startedAt: number };

export type SimulationOptions = {
  /** Answer the training call automatically, as an ACD auto-answer would (`#auto-answer`). */
  autoAnswer?: boolean;
};

/** What the training CRM answers for a call (a lookup every third call fails, as a slow CRM does). */
function trainingContext(id: number): Event {
  if (id % 3 === 0) return { event: "context", call: id, error: "CRM timeout (training)" };
  return {
    event: "context",
    call: id,
    fields: {
      Client: "Client Formation",
      "N° client": `C-${String(1000 + id)}`,
      Contrat: "Fibre Pro 1 Gb/s",
      "Dernier contact": "12/05 — panne signalée",
      Note: "Préfère être rappelé le matin",
    },
  };
}

export function simulate(fake: FakeBackend, options: SimulationOptions = {}): FakeBackend {
  const calls = new Map<number, SimCall>();
  // The contact-center side: the agent's state, wrap-ups queued and delivered.
  let agentState = "logged_out";
  let pending = 0;
  let wrapups = 0;
  const setAgent = (state: string, reason: string | null = null) => {
    agentState = state;
    fake.emit({ event: "agent_state", state, reason });
  };
  const timers = new Map<number, ReturnType<typeof setInterval>>();
  let nextId = 1;
  let tick = 0;
  let meter: ReturnType<typeof setInterval> | null = null;
  const later = (ms: number, event: Event) => setTimeout(() => fake.emit(event), ms);

  const startQuality = (id: number) => {
    timers.set(
      id,
      setInterval(() => {
        tick++;
        const bad = tick % 6 === 5;
        fake.emit({
          event: "quality",
          call: id,
          mos: bad ? 3.2 : 4.1 + 0.2 * Math.sin(tick),
          local_mos: 4.1,
          remote_mos: 4.0,
          loss_percent: bad ? 4.5 : 0.3,
          remote_loss_percent: 0.2,
          concealed_percent: 0.4,
          jitter_ms: bad ? 42 : 6,
          rtt_ms: 60,
          playout_delay_ms: 80,
          one_way_delay_ms: 40,
          fec_recovered: 0,
        });
      }, 5000),
    );
  };
  const end = (id: number, reason: string, result: CallResult) => {
    const call = calls.get(id);
    if (!call) return;
    clearInterval(timers.get(id));
    timers.delete(id);
    calls.delete(id);
    if (call.answeredAt !== null && agentState === "on_call") setTimeout(() => setAgent("after_call_work"), 50);
    const duration = call.answeredAt === null ? 0 : Math.round((Date.now() - call.answeredAt) / 1000);
    fake.emit({
      event: "ended",
      call: id,
      reason,
      normal: true,
      code: null,
      detail: "",
      stats: { codec: "opus", duration_s: duration, packets_sent: 0, packets_received: 0, packets_lost: 0, jitter_ms: 5, rtt_ms: 60, mos: 4.2 },
    });
    fake.historyEntries.unshift({
      id: Math.max(0, ...fake.historyEntries.map((entry) => entry.id)) + 1,
      started_at_ms: call.startedAt,
      direction: call.direction,
      number: call.number.replace(/\d(?=\d{4})/g, "•"),
      duration_s: duration,
      result,
    });
    fake.emitHistoryChanged();
  };
  const answer = (id: number, auto: boolean) => {
    const call = calls.get(id);
    if (!call || call.answeredAt !== null) return;
    call.answeredAt = Date.now();
    fake.emit({ event: "answered", call: id, auto });
    if (agentState !== "logged_out") setAgent("on_call");
    later(100, { event: "established", call: id, codec: "opus", remote_rtp: "127.0.0.1:40000" });
    startQuality(id);
  };
  const ringIn = () => {
    const id = nextId++;
    calls.set(id, { id, direction: "incoming", number: "+33612345678", answeredAt: null, startedAt: Date.now() });
    fake.emit({ event: "incoming", call: id, from: '"Client Formation" <sip:+33612345678@formation.invalid>', to: "<sip:agent01@formation.invalid>" });
    later(700, trainingContext(id));
    if (options.autoAnswer) {
      setTimeout(() => answer(id, true), 500);
      // The training customer hangs up after a short talk, so the wrap-up can be tried.
      setTimeout(() => calls.get(id)?.answeredAt && end(id, "remote_hangup", "answered"), 12_000);
    }
  };

  const send = fake.send;
  fake.send = async (command: Command) => {
    await send(command);
    switch (command.command) {
      case "call": {
        const id = nextId++;
        calls.set(id, { id, direction: "outgoing", number: command.uri, answeredAt: null, startedAt: Date.now() });
        later(0, { event: "calling", call: id, to: `sip:${command.uri}@formation.invalid` });
        later(800, { event: "ringing", call: id });
        setTimeout(() => {
          const call = calls.get(id);
          if (!call) return;
          call.answeredAt = Date.now();
          fake.emit({ event: "established", call: id, codec: "opus", remote_rtp: "127.0.0.1:40000" });
          startQuality(id);
        }, 2500);
        break;
      }
      case "answer":
        answer(command.call, false);
        break;
      case "decline":
        end(command.call, "declined", "declined");
        break;
      case "hangup":
        end(command.call, "local_hangup", calls.get(command.call)?.answeredAt ? "answered" : "cancelled");
        break;
      case "hold":
        later(50, { event: "hold", call: command.call, local: true });
        break;
      case "resume":
        later(50, { event: "resume", call: command.call, local: true });
        break;
      case "mute":
        later(0, { event: "muted", call: command.call, muted: command.muted });
        break;
      case "send_dtmf":
        later(0, { event: "dtmf_sent", call: command.call, digits: command.digits });
        break;
      case "transfer":
        later(300, { event: "transferred", call: command.call, target: command.target });
        setTimeout(() => end(command.call, "transferred", "answered"), 400);
        break;
      case "attended_transfer":
        later(300, { event: "transferred", call: command.call, target: String(command.consultation) });
        setTimeout(() => {
          end(command.call, "transferred", "answered");
          end(command.consultation, "transferred", "answered");
        }, 400);
        break;
      case "set_agent_state":
        later(100, { event: "agent_state", state: command.state, reason: command.state === "not_ready" ? (command.reason ?? null) : null });
        agentState = command.state;
        // A ready agent gets the next training call a little later.
        if (command.state === "ready" && calls.size === 0) setTimeout(() => agentState === "ready" && calls.size === 0 && ringIn(), 6000);
        break;
      case "wrapup": {
        wrapups++;
        pending++;
        const key = `formation-${Date.now()}-${wrapups}`;
        later(150, { event: "wrapup_queued", call: command.call, key, disposition: command.disposition });
        setTimeout(() => {
          if (agentState === "after_call_work") setAgent("ready");
          if (calls.size === 0) setTimeout(() => agentState === "ready" && calls.size === 0 && ringIn(), 6000);
        }, 300);
        // The training platform acknowledges after a while (every fourth delivery waits longer).
        setTimeout(() => {
          pending--;
          fake.emit({ event: "wrapup_delivered", delivered: 1, pending });
        }, wrapups % 4 === 0 ? 8000 : 1500);
        break;
      }
      case "shutdown":
        later(0, { event: "stopped" });
        break;
    }
  };
  const setLevelMeter = fake.setLevelMeter;
  fake.setLevelMeter = async (enabled) => {
    await setLevelMeter(enabled);
    if (meter !== null) clearInterval(meter);
    meter = enabled ? setInterval(() => fake.emitInputLevel(-45 + 25 * Math.random()), 100) : null;
  };

  const now = Date.now();
  fake.historyEntries = [
    { id: 2, started_at_ms: now - 25 * 60_000, direction: "incoming", number: "+•••••••4521", duration_s: 312, result: "answered" },
    { id: 1, started_at_ms: now - 26 * 3_600_000, direction: "outgoing", number: "••••••0199", duration_s: 0, result: "busy" },
  ];
  later(200, { event: "ready", sip: "sip:agent01@formation.invalid" });
  later(400, { event: "registering", registrar: "sip:formation.invalid" });
  later(1200, { event: "registered", expires: 600 });
  setTimeout(() => setAgent("ready"), 1300);
  setTimeout(ringIn, 3000);
  return fake;
}
