import { useState } from "preact/hooks";
import type { Command } from "../bindings";
import { useI18n } from "../context";
import { formatDuration, normalizeDialString } from "../format";
import type { MessageKey } from "../i18n";
import { attendedTransferPair, type Call } from "../state";
import { Keypad } from "./Keypad";
import { QualityPanel } from "./Quality";

type Props = {
  call: Call;
  /** The other live calls (not ringing in): candidates for an attended transfer. */
  others: Call[];
  nowMs: number;
  send: (command: Command) => void;
};

export function statusKey(call: Call): MessageKey {
  if (call.status === "held" && call.remoteHold && !call.localHold) return "call.status.heldRemote";
  return `call.status.${call.status}`;
}

export function ActiveCall({ call, others, nowMs, send }: Props) {
  const { t } = useI18n();
  const [target, setTarget] = useState("");
  const [consultation, setConsultation] = useState<string>("");
  const answered = call.answeredAtMs !== null;
  const elapsed = answered ? (nowMs - (call.answeredAtMs ?? nowMs)) / 1000 : 0;
  const consultationCall = others.find((other) => String(other.id) === consultation) ?? others[0] ?? null;

  const blindTransfer = (event: globalThis.Event) => {
    event.preventDefault();
    const uri = normalizeDialString(target);
    if (uri === "") return;
    send({ command: "transfer", call: call.id, target: uri });
  };

  return (
    <section class={`active-call status-${call.status}`} aria-labelledby="active-call-title" data-testid="active-call" data-call-id={call.id} data-status={call.status}>
      <div class="call-head">
        <div>
          <h2 id="active-call-title" class="section-title">
            {t(call.direction === "incoming" ? "call.incoming" : "call.outgoing")}
          </h2>
          {call.remote.name && (
            <div class="caller-name" data-testid="call-remote-name">
              {call.remote.name}
            </div>
          )}
          <div class="caller-number" data-testid="call-remote-number">
            {call.remote.number}
          </div>
        </div>
        <div class="call-state">
          <div class={`call-status-label status-${call.status}`} role="status" aria-live="polite" data-testid="call-status" data-status={call.status}>
            {t(statusKey(call))}
          </div>
          <div class="call-timer" data-testid="call-timer" aria-label={t("call.timer")} role="timer">
            {formatDuration(elapsed)}
          </div>
          {call.autoAnswered && <div class="muted">{t("call.auto")}</div>}
          {call.muted && (
            <div class="badge badge-muted" data-testid="muted-badge">
              {t("call.muted")}
            </div>
          )}
          {call.inputEnded && (
            <div class="badge badge-warn" role="alert">
              {t("call.inputEnded")}
            </div>
          )}
        </div>
      </div>

      <div class="call-controls" role="group" aria-label={t("call.title")}>
        <button
          type="button"
          class="btn"
          data-testid="hold-button"
          aria-pressed={call.localHold}
          disabled={!answered}
          onClick={() => send(call.localHold ? { command: "resume", call: call.id } : { command: "hold", call: call.id })}
        >
          {call.localHold ? t("call.resume") : t("call.hold")}
        </button>
        <button
          type="button"
          class={call.muted ? "btn btn-toggled" : "btn"}
          data-testid="mute-button"
          aria-pressed={call.muted}
          disabled={!answered}
          onClick={() => send({ command: "mute", call: call.id, muted: !call.muted })}
        >
          {call.muted ? t("call.unmute") : t("call.mute")}
        </button>
        <button type="button" class="btn btn-hangup" data-testid="hangup-button" onClick={() => send({ command: "hangup", call: call.id })}>
          {answered ? t("call.hangup") : t("call.cancel")}
        </button>
      </div>

      <div class="call-body">
        <div class="call-column">
          <h3 class="section-title">{t("call.dtmf")}</h3>
          <Keypad prefix="dtmf-key" label={t("call.dtmf")} disabled={!answered} onKey={(digits) => send({ command: "send_dtmf", call: call.id, digits })} />
          {call.dtmfSent && (
            <p class="muted" data-testid="dtmf-sent">
              {t("call.dtmfSent", { digits: call.dtmfSent })}
            </p>
          )}
          {call.dtmfReceived && <p class="muted">{t("call.dtmfReceived", { digits: call.dtmfReceived })}</p>}
        </div>
        <div class="call-column">
          <QualityPanel call={call} />
          <section class="transfer" aria-label={t("call.transfer")}>
            <h3 class="section-title">{t("call.transfer")}</h3>
            <form class="inline-form" onSubmit={blindTransfer}>
              <label class="visually-hidden" for="transfer-target">
                {t("call.transferTarget")}
              </label>
              <input
                id="transfer-target"
                type="text"
                inputMode="tel"
                autoComplete="off"
                placeholder={t("call.transferTarget")}
                data-testid="transfer-input"
                value={target}
                onInput={(event) => setTarget(event.currentTarget.value)}
              />
              <button type="submit" class="btn" data-testid="transfer-button" disabled={!answered || normalizeDialString(target) === ""}>
                {t("call.transferBlind")}
              </button>
            </form>
            {others.length > 0 && consultationCall && (
              <div class="inline-form">
                <label for="attended-transfer">{t("call.transferAttendedPick")}</label>
                <select id="attended-transfer" data-testid="attended-transfer-select" value={String(consultationCall.id)} onChange={(event) => setConsultation(event.currentTarget.value)}>
                  {others.map((other) => (
                    <option value={String(other.id)} key={other.id}>
                      {(other.remote.name ? `${other.remote.name} — ` : "") + other.remote.number} ({t(statusKey(other))})
                    </option>
                  ))}
                </select>
                <button
                  type="button"
                  class="btn"
                  data-testid="attended-transfer-button"
                  disabled={!answered}
                  onClick={() => send({ command: "attended_transfer", ...attendedTransferPair(call, consultationCall) })}
                >
                  {t("call.transferAttendedButton")}
                </button>
              </div>
            )}
            {call.transfer && (
              <p class={call.transfer.status === "done" ? "ok" : "warn"} role="status" data-testid="transfer-status">
                {call.transfer.status === "done" ? t("call.transferDone", { target: call.transfer.target }) : t("call.transferFailed", { reason: call.transfer.reason })}
              </p>
            )}
          </section>
        </div>
      </div>
    </section>
  );
}

export function OtherCalls({ calls, send }: { calls: Call[]; send: (command: Command) => void }) {
  const { t } = useI18n();
  if (calls.length === 0) return null;
  return (
    <section class="other-calls" aria-label={t("call.otherCalls")}>
      <h3 class="section-title">{t("call.otherCalls")}</h3>
      <ul>
        {calls.map((call) => (
          <li key={call.id} class="other-call" data-testid="other-call" data-call-id={call.id} data-status={call.status}>
            <span class="other-call-party">{call.remote.name ?? call.remote.number}</span>
            <span class="muted">{t(statusKey(call))}</span>
            {call.localHold && (
              <button type="button" class="btn btn-small" data-testid="other-call-resume" onClick={() => send({ command: "resume", call: call.id })}>
                {t("call.resume")}
              </button>
            )}
            <button type="button" class="btn btn-small btn-hangup" data-testid="other-call-hangup" onClick={() => send({ command: "hangup", call: call.id })}>
              {t("call.hangup")}
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

export function EndedCall({ call, onDismiss }: { call: Call; onDismiss: () => void }) {
  const { t } = useI18n();
  const reason = call.end?.reason ?? "";
  const duration = call.answeredAtMs !== null && call.endedAtMs !== null ? formatDuration((call.endedAtMs - call.answeredAtMs) / 1000) : null;
  const abnormal = call.end !== null && !call.end.normal;
  return (
    <section class={abnormal ? "ended-call warn" : "ended-call"} role="status" data-testid="call-ended" data-call-id={call.id}>
      <span>
        {abnormal ? t("call.endedAbnormal", { reason }) : reason ? t("call.endedReason", { reason }) : t("call.ended")}
        {" — "}
        {call.remote.name ?? call.remote.number}
        {duration && ` — ${duration}`}
      </span>
      <button type="button" class="btn btn-small" data-testid="dismiss-ended" onClick={onDismiss}>
        {t("call.dismiss")}
      </button>
    </section>
  );
}
