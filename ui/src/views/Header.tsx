import type { AppInfo } from "../bindings";
import { useI18n } from "../context";
import type { Engine, Registration } from "../state";

type Props = { info: AppInfo | null; registration: Registration; engine: Engine };

export function Header({ info, registration, engine }: Props) {
  const { t } = useI18n();
  // The training line has no registrar: it is ready, not disconnected.
  const training = info?.mode === "demo" && registration.status === "unregistered";
  const status = engine === "stopped" ? "stopped" : training ? "training" : registration.status;
  let label: string;
  switch (registration.status) {
    case "registered":
      label = t("registration.registered");
      break;
    case "connecting":
      label = t("registration.connecting");
      break;
    case "failed":
      label = registration.reason
        ? t("registration.failedReason", { reason: registration.code ? `${registration.code} ${registration.reason}` : registration.reason })
        : t("registration.failed");
      break;
    case "unregistered":
      label = t("registration.unregistered");
      break;
  }
  if (training) label = t("registration.training");
  if (engine === "stopped") label = t("registration.stopped");
  return (
    <header class="app-header">
      {info?.mode === "demo" && (
        <div class="demo-banner" role="note" data-testid="demo-banner">
          {t("demo.banner")}
        </div>
      )}
      <div class="header-row">
        <h1 class="app-title">{t("app.title")}</h1>
        <span class="account" data-testid="account-name" title={t("account.label")}>
          {info?.account ?? t("account.none")}
        </span>
        <span
          class={`status-pill status-${status}`}
          role="status"
          aria-live="polite"
          data-testid="registration-status"
          data-status={status}
        >
          <span class="status-dot" aria-hidden="true" />
          {label}
        </span>
      </div>
    </header>
  );
}
