import { useI18n } from "../context";

export const KEYPAD_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#"] as const;

/** `*` -> `star`, `#` -> `hash`, digits stay: the suffix of the keys' data-testid. */
export function keyTestId(key: string): string {
  return key === "*" ? "star" : key === "#" ? "hash" : key;
}

type Props = {
  /** data-testid prefix: `dtmf-key` or `dial-key`. */
  prefix: string;
  label: string;
  onKey: (key: string) => void;
  disabled?: boolean;
};

export function Keypad({ prefix, label, onKey, disabled = false }: Props) {
  const { t } = useI18n();
  return (
    <div class="keypad" role="group" aria-label={label}>
      {KEYPAD_KEYS.map((key) => (
        <button
          type="button"
          key={key}
          class="keypad-key"
          data-testid={`${prefix}-${keyTestId(key)}`}
          aria-label={prefix === "dtmf-key" ? t("call.dtmfKey", { key }) : t("dial.key", { key })}
          disabled={disabled}
          onClick={() => onKey(key)}
        >
          {key}
        </button>
      ))}
    </div>
  );
}
