import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AppInfo, Command, HistoryEntry, UserSettings } from "./bindings";
import type { Backend } from "./backend";
import { I18n } from "./context";
import { isMessageKey, resolveLanguage, translator, type Translate } from "./i18n";
import { shortcutCommand, shortcutFor } from "./shortcuts";
import { dismissEnded, dismissNotices, endedCalls, focusedCall, initialState, liveCalls, openWrapups, reduce, ringingIncoming, type Call, type PhoneState } from "./state";
import { ActiveCall, EndedCall, OtherCalls } from "./views/ActiveCall";
import { AgentBar } from "./views/AgentBar";
import { CustomerCard } from "./views/CustomerCard";
import { Wrapup } from "./views/Wrapup";
import { DialPad } from "./views/DialPad";
import { Header } from "./views/Header";
import { History } from "./views/History";
import { IncomingCall } from "./views/IncomingCall";
import { Settings } from "./views/Settings";

export type Tab = "phone" | "history" | "settings";
export const TABS: Tab[] = ["phone", "history", "settings"];

type Props = {
  backend: Backend;
  /** Wall clock in ms (injectable for tests). */
  clock?: () => number;
  /** `navigator.language` unless given. */
  browserLanguage?: string;
  initialTab?: Tab;
};

export function App({ backend, clock = Date.now, browserLanguage, initialTab = "phone" }: Props) {
  const [info, setInfo] = useState<AppInfo | null>(null);
  const [userSettings, setUserSettings] = useState<UserSettings | null>(null);
  const [phone, setPhone] = useState<PhoneState>(initialState);
  const [tab, setTab] = useState<Tab>(initialTab);
  const [dial, setDial] = useState("");
  const [history, setHistory] = useState<HistoryEntry[]>([]);
  const [commandError, setCommandError] = useState<string | null>(null);
  const [nowMs, setNowMs] = useState(clock);

  const language = resolveLanguage(userSettings?.language, info?.locale, browserLanguage ?? (typeof navigator === "undefined" ? null : navigator.language));
  const t = useMemo(() => translator(language), [language]);
  useEffect(() => {
    document.documentElement.lang = language;
  }, [language]);

  /** Sends a command; resolves false (the error shown) when the shell refused it. */
  const trySend = useCallback(
    (command: Command): Promise<boolean> => {
      setCommandError(null);
      return backend.send(command).then(
        () => true,
        (error: unknown) => {
          setCommandError(String(error));
          return false;
        },
      );
    },
    [backend],
  );
  const send = useCallback((command: Command) => void trySend(command), [trySend]);
  const refreshHistory = useCallback(() => {
    backend.history().then(setHistory).catch(() => undefined);
  }, [backend]);

  // Start: app info (mode, account, locale, deep link), settings (language), history, events.
  useEffect(() => {
    backend
      .appInfo()
      .then((value) => {
        setInfo(value);
        if (value.deep_link) setDial(value.deep_link);
      })
      .catch((error: unknown) => setCommandError(String(error)));
    backend.settings().then(setUserSettings).catch(() => undefined);
    refreshHistory();
    const subscriptions = [
      backend.onPhoneEvent((event) => setPhone((state) => reduce(state, event, clock()))),
      backend.onHistoryChanged(refreshHistory),
      backend.onDeepLink(({ number }) => {
        setDial(number);
        setTab("phone");
      }),
    ];
    // What happened before this window listened (the phone registers at once): replayed after
    // subscribing, so nothing falls in between (a repeated event changes nothing).
    backend
      .recentEvents()
      .then((events) => setPhone((state) => events.reduce((s, event) => reduce(s, event, clock()), state)))
      .catch(() => undefined);
    requestNotificationPermission();
    return () => subscriptions.forEach((unsubscribe) => unsubscribe());
  }, [backend, clock, refreshHistory]);

  const workflow = info?.workflow ?? null;
  const dispositions = workflow?.dispositions ?? [];
  const notReadyReasons = workflow?.not_ready_reasons ?? NO_REASONS;
  // Contact-center mode: the platform tells an agent state, or dispositions are configured.
  const contactCenter = phone.agent !== null || dispositions.length > 0;
  const wrapups = dispositions.length > 0 ? openWrapups(phone) : [];

  // The timers tick while a call is answered, the agent is in a state, or a wrap-up is open.
  const live = liveCalls(phone);
  const ticking = live.some((call) => call.answeredAtMs !== null) || phone.agent !== null || wrapups.length > 0;
  useEffect(() => {
    setNowMs(clock());
    if (!ticking) return undefined;
    const timer = setInterval(() => setNowMs(clock()), 1000);
    return () => clearInterval(timer);
  }, [ticking, clock, phone]);

  const incoming = ringingIncoming(phone);
  const focused = focusedCall(phone);
  const others = live.filter((call) => call.id !== focused?.id && call.status !== "incoming");
  const ended = endedCalls(phone);
  const busy = live.some((call) => call.status !== "held" && call.status !== "incoming");

  // The window title tells a ringing call even when the window is behind others.
  useEffect(() => {
    document.title = incoming ? `${t("incoming.title")} — ${incoming.remote.name ?? incoming.remote.number}` : t("app.title");
  }, [incoming, t]);

  useEffect(() => {
    if (tab === "history") refreshHistory();
  }, [tab, refreshHistory]);

  // A desktop notification for each new incoming call.
  const notified = useRef(new Set<number>());
  useEffect(() => {
    if (incoming && !notified.current.has(incoming.id)) {
      notified.current.add(incoming.id);
      notifyIncoming(incoming, t);
    }
  }, [incoming, t]);

  // Keyboard shortcuts, on the latest state.
  const latest = useRef({ phone, dial, notReadyReasons });
  latest.current = { phone, dial, notReadyReasons };
  useEffect(() => {
    const onKeyDown = (event: KeyboardEvent) => {
      const action = shortcutFor(event);
      if (action === null) return;
      event.preventDefault();
      const command = shortcutCommand(action, latest.current.phone, latest.current.dial, latest.current.notReadyReasons);
      if (command) send(command);
    };
    window.addEventListener("keydown", onKeyDown);
    return () => window.removeEventListener("keydown", onKeyDown);
  }, [send]);

  const onTabKey = (event: KeyboardEvent) => {
    const index = TABS.indexOf(tab);
    let next: Tab | undefined;
    if (event.key === "ArrowRight") next = TABS[(index + 1) % TABS.length];
    if (event.key === "ArrowLeft") next = TABS[(index + TABS.length - 1) % TABS.length];
    if (next) {
      event.preventDefault();
      setTab(next);
      document.getElementById(`tab-${next}`)?.focus();
    }
  };

  const notices = phone.notices;
  // The customer card: once the context came, or while it loads for a contact-center agent
  // (without a CRM no context ever comes, and no card should wait for it).
  const card = (call: Call) =>
    call.context !== null && (call.context.status !== "loading" || contactCenter) ? <CustomerCard context={call.context} callId={call.id} /> : null;
  return (
    <I18n.Provider value={{ t, language }}>
      <div class="app">
        <Header info={info} registration={phone.registration} engine={phone.engine} />
        {phone.agent && <AgentBar agent={phone.agent} reasons={notReadyReasons} nowMs={nowMs} send={send} />}
        {phone.wrapupsPending > 0 && (
          <p class="wrapups-pending" role="status" data-testid="wrapups-pending" data-count={phone.wrapupsPending}>
            {t(phone.wrapupsPending === 1 ? "wrapup.pendingOne" : "wrapup.pendingMany", { count: phone.wrapupsPending })}
          </p>
        )}

        {(notices.length > 0 || commandError) && (
          <div class="notices" data-testid="notices" role="alert">
            <ul>
              {commandError && (
                <li class="notice notice-error" data-testid="notice">
                  {t("error.command", { error: commandError })}
                </li>
              )}
              {notices.map((notice) => (
                <li class={`notice notice-${notice.kind}`} data-testid="notice" key={`${notice.atMs}-${notice.message}`}>
                  {noticeText(notice.code, notice.message, t)}
                </li>
              ))}
            </ul>
            <button
              type="button"
              class="btn btn-small"
              data-testid="dismiss-notices"
              onClick={() => {
                setCommandError(null);
                setPhone(dismissNotices);
              }}
            >
              {t("error.dismiss")}
            </button>
          </div>
        )}

        <div class="call-area">
          {incoming && (
            <div class="with-card">
              <IncomingCall call={incoming} waiting={live.filter((call) => call.status === "incoming").length - 1} send={send} />
              {card(incoming)}
            </div>
          )}
          {focused && (
            <div class="with-card">
              <ActiveCall key={focused.id} call={focused} others={others} nowMs={nowMs} send={send} />
              {card(focused)}
            </div>
          )}
          <OtherCalls calls={others} send={send} />
          {!incoming &&
            !focused &&
            ended.map((call) => (
              <div class="ended-group" key={call.id}>
                {call.wrapup?.status === "queued" && (
                  <p class="wrapup-saved ok" role="status" data-testid="wrapup-saved" data-call-id={call.id}>
                    {t("wrapup.saved")}
                  </p>
                )}
                <EndedCall call={call} onDismiss={() => setPhone((state) => dismissEnded(state, call.id))} />
              </div>
            ))}
          {wrapups.map((call) => (
            <div class="with-card" key={call.id}>
              <Wrapup
                call={call}
                dispositions={dispositions}
                wrapupSeconds={workflow?.wrapup_seconds ?? null}
                nowMs={nowMs}
                send={trySend}
                onDismiss={() => setPhone((state) => dismissEnded(state, call.id))}
              />
              {card(call)}
            </div>
          ))}
        </div>

        <nav class="tabs" role="tablist" aria-label={t("tabs.label")}>
          {TABS.map((name) => (
            <button
              type="button"
              role="tab"
              id={`tab-${name}`}
              key={name}
              class="tab"
              data-testid={`tab-${name}`}
              aria-selected={tab === name}
              aria-controls={`panel-${name}`}
              tabIndex={tab === name ? 0 : -1}
              onClick={() => setTab(name)}
              onKeyDown={onTabKey}
            >
              {t(`tabs.${name}`)}
            </button>
          ))}
        </nav>
        <main class="tab-panel" role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`} data-testid={`panel-${tab}`}>
          {tab === "phone" && <DialPad value={dial} onChange={setDial} busy={busy} onCall={(uri) => send({ command: "call", uri })} />}
          {tab === "history" && <History entries={history} nowMs={nowMs} onRefresh={refreshHistory} />}
          {tab === "settings" && <Settings backend={backend} onSaved={setUserSettings} secrets={info?.mode === "live" ? info.workflow.secrets : []} />}
        </main>

        <footer class="app-footer">
          <p class="shortcuts-help" data-testid="shortcuts-help">
            {t("shortcuts.help")}
          </p>
          {info && <p class="muted">{t("footer.version", { version: info.version })}</p>}
        </footer>
      </div>
    </I18n.Provider>
  );
}

const NO_REASONS: string[] = [];

function noticeText(code: string | null, message: string, t: Translate): string {
  const key = `error.engine.${code}`;
  return code !== null && isMessageKey(key) ? t("error.withCode", { label: t(key), message }) : message;
}

function requestNotificationPermission(): void {
  try {
    if (typeof Notification !== "undefined" && Notification.permission === "default") {
      void Notification.requestPermission().catch(() => undefined);
    }
  } catch {
    // No notification support in this webview: the on-screen panel is enough.
  }
}

function notifyIncoming(call: Call, t: Translate): void {
  try {
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    const body = call.remote.name ? `${call.remote.name} — ${call.remote.number}` : call.remote.number;
    new Notification(t("notification.title"), { body, tag: `homeagent-call-${call.id}`, requireInteraction: true });
  } catch {
    // Notifications are a convenience; failing to show one must not break the call UI.
  }
}
