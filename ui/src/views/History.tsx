import type { HistoryEntry } from "../bindings";
import { useI18n } from "../context";
import { formatCallTime, formatDuration } from "../format";
import { maskNumber } from "../mask";

type Props = { entries: HistoryEntry[]; nowMs: number; onRefresh: () => void };

export function History({ entries, nowMs, onRefresh }: Props) {
  const { t, language } = useI18n();
  return (
    <section class="history" aria-labelledby="history-title">
      <div class="section-head">
        <h2 id="history-title" class="section-title">
          {t("history.title")}
        </h2>
        <button type="button" class="btn btn-small" data-testid="history-refresh" onClick={onRefresh}>
          {t("history.refresh")}
        </button>
      </div>
      {entries.length === 0 ? (
        <p class="muted" data-testid="history-empty">
          {t("history.empty")}
        </p>
      ) : (
        <table class="history-table" data-testid="history-list">
          <thead>
            <tr>
              <th scope="col">{t("history.time")}</th>
              <th scope="col">{t("history.direction")}</th>
              <th scope="col">{t("history.number")}</th>
              <th scope="col">{t("history.duration")}</th>
              <th scope="col">{t("history.result")}</th>
            </tr>
          </thead>
          <tbody>
            {entries.map((entry) => (
              <tr key={entry.id} data-testid="history-row" data-entry-id={entry.id} data-result={entry.result} class={`result-${entry.result}`}>
                <td data-testid="history-time">{entry.started_at_ms === null ? "—" : formatCallTime(entry.started_at_ms, nowMs, language)}</td>
                <td data-testid="history-direction">
                  <span aria-hidden="true">{entry.direction === "incoming" ? "↙ " : "↗ "}</span>
                  {t(entry.direction === "incoming" ? "history.incoming" : "history.outgoing")}
                </td>
                <td data-testid="history-number" class="number">
                  {maskNumber(entry.number)}
                </td>
                <td data-testid="history-duration">{formatDuration(entry.duration_s ?? 0)}</td>
                <td data-testid="history-result">{t(`result.${entry.result}`)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
