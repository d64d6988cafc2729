import { useI18n } from "../context";
import { normalizeDialString } from "../format";
import { Keypad } from "./Keypad";

type Props = {
  value: string;
  onChange: (value: string) => void;
  onCall: (uri: string) => void;
  /** A call is in progress that is not on hold: dialling is not offered. */
  busy: boolean;
};

export function DialPad({ value, onChange, onCall, busy }: Props) {
  const { t } = useI18n();
  const uri = normalizeDialString(value);
  const submit = (event: globalThis.Event) => {
    event.preventDefault();
    if (uri !== "" && !busy) onCall(uri);
  };
  return (
    <section class="dial-pad" aria-labelledby="dial-title">
      <h2 id="dial-title" class="section-title">
        {t("dial.title")}
      </h2>
      <form class="dial-form" onSubmit={submit}>
        <label class="visually-hidden" for="dial-input">
          {t("dial.input")}
        </label>
        <input
          id="dial-input"
          class="dial-input"
          type="text"
          inputMode="tel"
          autoComplete="off"
          placeholder={t("dial.placeholder")}
          data-testid="dial-input"
          value={value}
          onInput={(event) => onChange(event.currentTarget.value)}
        />
        <button type="button" class="btn btn-small" data-testid="dial-clear" aria-label={t("dial.clear")} disabled={value === ""} onClick={() => onChange("")}>
          ⌫
        </button>
        <button type="submit" class="btn btn-call" data-testid="call-button" disabled={uri === "" || busy}>
          {t("dial.call")}
        </button>
      </form>
      {/* In a call, the call's own keypad sends DTMF: a second keypad here would confuse. */}
      {!busy && <Keypad prefix="dial-key" label={t("dial.title")} onKey={(key) => onChange(value + key)} />}
    </section>
  );
}
