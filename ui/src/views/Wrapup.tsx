import { useState } from "preact/hooks";
import type { Command } from "../bindings";
import { useI18n } from "../context";
import { formatDuration } from "../format";
import { wrapupSecondsLeft, type Call } from "../state";

export type Disposition = { code: string; label: string };

type Props = {
  call: Call;
  /** `AppInfo.workflow.dispositions`: the label is shown, the code is sent. */
  dispositions: readonly Disposition[];
  /** `AppInfo.workflow.wrapup_seconds`: the after-call work allowed, counted from the end. */
  wrapupSeconds: number | null;
  nowMs: number;
  /** Resolves false when the command was refused: the form can be submitted again. */
  send: (command: Command) => Promise<boolean>;
  onDismiss: () => void;
};

/** Case- and accent-insensitive. */
function fold(text: string): string {
  return text.normalize("NFD").replace(/\p{Diacritic}/gu, "").toLowerCase();
}

export function matchingDispositions(dispositions: readonly Disposition[], filter: string): Disposition[] {
  const wanted = fold(filter.trim());
  if (wanted === "") return [...dispositions];
  return dispositions.filter((d) => fold(d.label).includes(wanted) || fold(d.code).includes(wanted));
}

/** The wrap-up form of an answered call that has ended: disposition, note, submit. */
export function Wrapup({ call, dispositions, wrapupSeconds, nowMs, send, onDismiss }: Props) {
  const { t } = useI18n();
  const [filter, setFilter] = useState("");
  const [picked, setPicked] = useState("");
  const [note, setNote] = useState("");
  const [submitted, setSubmitted] = useState(false);
  const shown = matchingDispositions(dispositions, filter);
  const chosen = shown.some((d) => d.code === picked) ? picked : "";
  const left = wrapupSecondsLeft(call, wrapupSeconds, nowMs);
  const ids = { title: `wrapup-title-${call.id}`, filter: `wrapup-filter-${call.id}`, disposition: `wrapup-disposition-${call.id}`, note: `wrapup-note-${call.id}` };

  const submit = (event: globalThis.Event) => {
    event.preventDefault();
    if (chosen === "" || submitted) return;
    setSubmitted(true);
    void send({ command: "wrapup", call: call.id, disposition: chosen, note }).then((sent) => {
      if (!sent) setSubmitted(false);
    });
  };

  return (
    <section class="wrapup" aria-labelledby={ids.title} data-testid="wrapup" data-call-id={call.id}>
      <div class="wrapup-head">
        <div>
          <h2 id={ids.title} class="section-title">
            {t("wrapup.title")}
          </h2>
          <div class="muted">{t("wrapup.call", { party: call.remote.name ?? call.remote.number })}</div>
        </div>
        {left !== null && (
          <div class={left === 0 ? "wrapup-countdown warn" : "wrapup-countdown"} role="timer" aria-label={t("wrapup.countdownLabel")} data-testid="wrapup-countdown" data-seconds={left}>
            {formatDuration(left)}
          </div>
        )}
      </div>
      <form class="wrapup-form" onSubmit={submit}>
        <label for={ids.filter}>{t("wrapup.filter")}</label>
        <input
          id={ids.filter}
          type="search"
          autoComplete="off"
          data-testid="wrapup-filter"
          value={filter}
          onInput={(event) => setFilter(event.currentTarget.value)}
        />
        <label for={ids.disposition}>{t("wrapup.disposition")}</label>
        <select
          id={ids.disposition}
          data-testid="wrapup-disposition"
          size={Math.min(8, Math.max(2, shown.length + 1))}
          required
          value={chosen}
          onChange={(event) => {
            setPicked(event.currentTarget.value);
            setSubmitted(false);
          }}
        >
          <option value="" disabled>
            {shown.length === 0 ? t("wrapup.noMatch") : t("wrapup.choose")}
          </option>
          {shown.map((d) => (
            <option value={d.code} key={d.code}>
              {d.label}
            </option>
          ))}
        </select>
        <label for={ids.note}>{t("wrapup.note")}</label>
        <textarea
          id={ids.note}
          rows={3}
          data-testid="wrapup-note"
          value={note}
          onInput={(event) => {
            setNote(event.currentTarget.value);
            setSubmitted(false);
          }}
        />
        <div class="wrapup-actions">
          <button type="submit" class="btn btn-primary" data-testid="wrapup-submit" disabled={chosen === "" || submitted}>
            {t("wrapup.submit")}
          </button>
          <button type="button" class="btn btn-small" data-testid="wrapup-dismiss" onClick={onDismiss}>
            {t("wrapup.skip")}
          </button>
        </div>
      </form>
    </section>
  );
}
