import { useEffect, useState } from "preact/hooks";
import type { AudioDevice, UserSettings } from "../bindings";
import type { Backend } from "../backend";
import type { SecretKind } from "../types";
import { useI18n } from "../context";
import type { MessageKey, Params } from "../i18n";
import type { Language } from "../types";

/** `secrets`: the credentials the configured services need (none in training mode). */
type Props = { backend: Backend; onSaved: (settings: UserSettings) => void; secrets?: SecretKind[] };

type DeviceField = "microphone" | "speaker" | "ringer";
type SwitchField = "echo_cancellation" | "noise_suppression" | "gain_control";

/** Live while mounted: asks Rust for input-level events and stops them when closed. */
export function Settings({ backend, onSaved, secrets = [] }: Props) {
  const { t } = useI18n();
  const [devices, setDevices] = useState<AudioDevice[]>([]);
  const [draft, setDraft] = useState<UserSettings | null>(null);
  const [pattern, setPattern] = useState("");
  // A message key, not a text: it re-translates when the saved language applies.
  const [status, setStatus] = useState<{ ok: boolean; key: MessageKey; params?: Params } | null>(null);
  const [level, setLevel] = useState(-100);

  useEffect(() => {
    let live = true;
    backend.devices().then((list) => live && setDevices(list)).catch((error) => live && setStatus({ ok: false, key: "error.command", params: { error: String(error) } }));
    backend.settings().then((settings) => live && setDraft(settings)).catch((error) => live && setStatus({ ok: false, key: "error.command", params: { error: String(error) } }));
    const unsubscribe = backend.onInputLevel(({ dbfs }) => setLevel(Math.max(-100, Math.min(0, dbfs))));
    const unsubscribeDevices = backend.onDevicesChanged((list) => live && setDevices(list));
    backend.setLevelMeter(true).catch(() => undefined);
    return () => {
      live = false;
      unsubscribe();
      unsubscribeDevices();
      backend.setLevelMeter(false).catch(() => undefined);
    };
  }, [backend]);

  if (draft === null) {
    return (
      <section class="settings" aria-busy="true">
        <p class="muted">{t("settings.loading")}</p>
        {status && <p class="warn">{t(status.key, status.params)}</p>}
      </section>
    );
  }

  const update = (change: Partial<UserSettings>) => {
    setDraft({ ...draft, ...change });
    setStatus(null);
  };
  const save = async (event: globalThis.Event) => {
    event.preventDefault();
    try {
      await backend.saveSettings(draft);
      setStatus({ ok: true, key: "settings.saved" });
      onSaved(draft);
    } catch (error) {
      setStatus({ ok: false, key: "settings.saveFailed", params: { error: String(error) } });
    }
  };
  const addPattern = () => {
    const value = pattern.trim();
    if (value === "" || draft.preferred_devices.some((p) => p.toLowerCase() === value.toLowerCase())) return;
    update({ preferred_devices: [...draft.preferred_devices, value] });
    setPattern("");
  };
  const movePatternUp = (index: number) => {
    if (index <= 0) return;
    const list = [...draft.preferred_devices];
    [list[index - 1], list[index]] = [list[index]!, list[index - 1]!];
    update({ preferred_devices: list });
  };

  const deviceSelect = (field: DeviceField, label: string, wantInput: boolean) => {
    const options = devices.filter((device) => (wantInput ? device.input : device.output));
    const current = draft[field];
    const missing = current !== null && !options.some((device) => device.name === current);
    return (
      <div class="field">
        <label for={`settings-${field}`}>{label}</label>
        <select id={`settings-${field}`} data-testid={`settings-${field}`} value={current ?? ""} onChange={(event) => update({ [field]: event.currentTarget.value || null })}>
          <option value="">{t("settings.systemDefault")}</option>
          {options.map((device) => (
            <option value={device.name} key={device.name}>
              {(wantInput ? device.default_input : device.default_output) ? t("settings.defaultMark", { name: device.name }) : device.name}
            </option>
          ))}
          {missing && <option value={current}>{current}</option>}
        </select>
      </div>
    );
  };
  const toggle = (field: SwitchField, testId: string, label: string) => (
    <div class="field field-switch">
      <input id={`settings-${field}`} type="checkbox" role="switch" data-testid={testId} checked={draft[field]} aria-checked={draft[field]} onChange={(event) => update({ [field]: event.currentTarget.checked })} />
      <label for={`settings-${field}`}>{label}</label>
    </div>
  );

  return (
    <section class="settings" aria-labelledby="settings-title">
      <h2 id="settings-title" class="section-title">
        {t("settings.title")}
      </h2>
      <form onSubmit={save}>
        <div class="settings-grid">
          <div>
            {deviceSelect("microphone", t("settings.microphone"), true)}
            <div class="field">
              <label for="input-level">{t("settings.level")}</label>
              <meter id="input-level" data-testid="input-level" min={-100} max={0} low={-50} high={-6} optimum={-20} value={level}>
                {t("settings.levelValue", { dbfs: Math.round(level) })}
              </meter>
              <span class="muted level-value" data-testid="input-level-value">
                {t("settings.levelValue", { dbfs: Math.round(level) })}
              </span>
            </div>
            {deviceSelect("speaker", t("settings.speaker"), false)}
            {deviceSelect("ringer", t("settings.ringer"), false)}
            <button type="button" class="btn" data-testid="test-tone" onClick={() => backend.playTestTone(draft.speaker).catch((error) => setStatus({ ok: false, key: "error.command", params: { error: String(error) } }))}>
              {t("settings.testTone")}
            </button>
          </div>
          <div>
            {toggle("echo_cancellation", "settings-echo", t("settings.echo"))}
            {toggle("noise_suppression", "settings-noise", t("settings.noise"))}
            {toggle("gain_control", "settings-gain", t("settings.gain"))}
            <fieldset class="field preferred">
              <legend>{t("settings.preferred")}</legend>
              {draft.preferred_devices.length === 0 && <p class="muted">{t("settings.preferredEmpty")}</p>}
              <ol>
                {draft.preferred_devices.map((item, index) => (
                  <li key={item} data-testid="preferred-device-row">
                    <span class="pattern">{item}</span>
                    <button type="button" class="btn btn-small" data-testid="preferred-device-up" aria-label={t("settings.preferredUp", { pattern: item })} disabled={index === 0} onClick={() => movePatternUp(index)}>
                      ↑
                    </button>
                    <button type="button" class="btn btn-small" data-testid="preferred-device-remove" aria-label={t("settings.preferredRemove", { pattern: item })} onClick={() => update({ preferred_devices: draft.preferred_devices.filter((_, i) => i !== index) })}>
                      ✕
                    </button>
                  </li>
                ))}
              </ol>
              <div class="inline-form">
                <label class="visually-hidden" for="preferred-new">
                  {t("settings.preferredNew")}
                </label>
                <input
                  id="preferred-new"
                  type="text"
                  data-testid="preferred-device-input"
                  placeholder={t("settings.preferredNew")}
                  value={pattern}
                  onInput={(event) => setPattern(event.currentTarget.value)}
                  onKeyDown={(event) => {
                    if (event.key === "Enter") {
                      event.preventDefault();
                      addPattern();
                    }
                  }}
                />
                <button type="button" class="btn btn-small" data-testid="preferred-device-add" onClick={addPattern}>
                  {t("settings.preferredAdd")}
                </button>
              </div>
            </fieldset>
            <div class="field">
              <label for="settings-language">{t("settings.language")}</label>
              <select id="settings-language" data-testid="settings-language" value={draft.language ?? ""} onChange={(event) => update({ language: (event.currentTarget.value || null) as Language | null })}>
                <option value="">{t("settings.languageAuto")}</option>
                <option value="fr">Français</option>
                <option value="en">English</option>
              </select>
            </div>
          </div>
        </div>
        <div class="settings-actions">
          <button type="submit" class="btn btn-primary" data-testid="save-settings">
            {t("settings.save")}
          </button>
          {status && (
            <span class={status.ok ? "ok" : "warn"} role="status" data-testid="settings-status">
              {t(status.key, status.params)}
            </span>
          )}
        </div>
      </form>
      {secrets.map((kind) => (
        <SecretForm key={kind} backend={backend} kind={kind} />
      ))}
    </section>
  );
}

/** A credential goes to the OS keychain; the field is cleared once saved. */
function SecretForm({ backend, kind }: { backend: Backend; kind: SecretKind }) {
  const { t } = useI18n();
  const [value, setValue] = useState("");
  const [status, setStatus] = useState<{ ok: boolean; text: string } | null>(null);
  const save = async (event: Event) => {
    event.preventDefault();
    try {
      await backend.saveSecret(kind, value);
      setValue("");
      setStatus({ ok: true, text: t("settings.secretSaved") });
    } catch (error) {
      setStatus({ ok: false, text: t("error.command", { error: String(error) }) });
    }
  };
  const id = `settings-secret-${kind}`;
  return (
    <form class="settings-password" onSubmit={save}>
      <label for={id}>{t(`settings.secret.${kind}`)}</label>
      <input id={id} type="password" autocomplete="off" data-testid={id} value={value} onInput={(event) => setValue(event.currentTarget.value)} />
      <button type="submit" class="btn" data-testid={`save-secret-${kind}`} disabled={value === ""}>
        {t("settings.saveSecret")}
      </button>
      {status && (
        <span class={status.ok ? "ok" : "warn"} role="status" data-testid={`secret-status-${kind}`}>
          {status.text}
        </span>
      )}
    </form>
  );
}
