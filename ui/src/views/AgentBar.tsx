import { useState } from "preact/hooks";
import type { Command } from "../bindings";
import { useI18n } from "../context";
import { formatDuration } from "../format";
import type { Agent } from "../state";

type Props = {
  agent: Agent;
  /** `AppInfo.workflow.not_ready_reasons`. */
  reasons: readonly string[];
  nowMs: number;
  send: (command: Command) => void;
};

/** The agent's state on the platform, how long in it, and the buttons to change it. */
export function AgentBar({ agent, reasons, nowMs, send }: Props) {
  const { t } = useI18n();
  const [picked, setPicked] = useState<string>("");
  const reason = reasons.includes(picked) ? picked : (reasons[0] ?? "");
  const stateLabel = t(`agent.state.${agent.state}`);
  const label = agent.reason ? t("agent.stateWithReason", { state: stateLabel, reason: agent.reason }) : stateLabel;
  const loggedOut = agent.state === "logged_out";

  return (
    <section class="agent-bar" aria-label={t("agent.label")} data-testid="agent-bar">
      <span class={`agent-pill agent-${agent.state}`} role="status" aria-live="polite" data-testid="agent-state" data-state={agent.state} data-status={agent.state}>
        <span class="status-dot" aria-hidden="true" />
        {label}
      </span>
      <span class="agent-time" role="timer" aria-label={t("agent.since")} data-testid="agent-time">
        {formatDuration((nowMs - agent.sinceMs) / 1000)}
      </span>
      <div class="agent-actions" role="group" aria-label={t("agent.label")}>
        <button
          type="button"
          class="btn btn-small btn-ready"
          data-testid="agent-ready"
          aria-pressed={agent.state === "ready"}
          onClick={() => send({ command: "set_agent_state", state: "ready" })}
        >
          {t("agent.ready")}
        </button>
        {reasons.length > 0 && (
          <>
            <label class="visually-hidden" for="agent-reason">
              {t("agent.reason")}
            </label>
            <select id="agent-reason" data-testid="agent-reason" value={reason} onChange={(event) => setPicked(event.currentTarget.value)}>
              {reasons.map((name) => (
                <option value={name} key={name}>
                  {name}
                </option>
              ))}
            </select>
          </>
        )}
        <button
          type="button"
          class="btn btn-small"
          data-testid="agent-not-ready"
          aria-pressed={agent.state === "not_ready"}
          onClick={() =>
            send(reason === "" ? { command: "set_agent_state", state: "not_ready" } : { command: "set_agent_state", state: "not_ready", reason })
          }
        >
          {t("agent.notReady")}
        </button>
        <button
          type="button"
          class="btn btn-small"
          data-testid="agent-logout"
          disabled={loggedOut}
          onClick={() => send({ command: "set_agent_state", state: "logged_out" })}
        >
          {t("agent.logout")}
        </button>
      </div>
    </section>
  );
}
