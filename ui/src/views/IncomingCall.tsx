import type { Command } from "../bindings";
import { useI18n } from "../context";
import type { Call } from "../state";

type Props = { call: Call; waiting: number; send: (command: Command) => void };

export function IncomingCall({ call, waiting, send }: Props) {
  const { t } = useI18n();
  const caller = call.remote.name ?? call.remote.number;
  return (
    <section class="incoming-call" aria-labelledby="incoming-title" aria-describedby="incoming-caller" data-testid="incoming-call" data-call-id={call.id}>
      {/* Announced once by screen readers without moving the focus (no accidental answer). */}
      <p class="visually-hidden" role="alert">
        {t("incoming.announce", { caller })}
      </p>
      <h2 id="incoming-title" class="incoming-title">
        {t("incoming.title")}
      </h2>
      <div id="incoming-caller" class="incoming-caller">
        {call.remote.name && (
          <div class="caller-name" data-testid="incoming-caller-name">
            {call.remote.name}
          </div>
        )}
        <div class="caller-number" data-testid="incoming-caller-number">
          {call.remote.number || t("incoming.unknown")}
        </div>
      </div>
      {waiting > 0 && <p class="incoming-others">{t("incoming.others", { count: waiting })}</p>}
      <div class="incoming-actions">
        <button
          type="button"
          class="btn btn-answer"
          data-testid="answer-button"
          aria-label={t("incoming.answerLabel", { caller })}
          onClick={() => send({ command: "answer", call: call.id })}
        >
          {t("incoming.answer")}
        </button>
        <button
          type="button"
          class="btn btn-decline"
          data-testid="decline-button"
          aria-label={t("incoming.declineLabel", { caller })}
          onClick={() => send({ command: "decline", call: call.id })}
        >
          {t("incoming.decline")}
        </button>
      </div>
    </section>
  );
}
