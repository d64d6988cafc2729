import { useI18n } from "../context";
import type { CustomerContext } from "../state";

type Props = { context: CustomerContext; callId: number };

/**
 * The customer's context (screen-pop). Every label and value is rendered as text (Preact
 * escapes it): CRM data is never parsed as HTML.
 */
export function CustomerCard({ context, callId }: Props) {
  const { t } = useI18n();
  const titleId = `customer-card-title-${callId}`;
  return (
    <section class="customer-card" aria-labelledby={titleId} aria-busy={context.status === "loading"} data-testid="customer-card" data-call-id={callId} data-status={context.status}>
      <h3 id={titleId} class="section-title">
        {t("customer.title")}
      </h3>
      {context.status === "loading" && (
        <p class="muted" role="status" data-testid="customer-card-loading">
          {t("customer.loading")}
        </p>
      )}
      {context.status === "error" && (
        <p class="warn" role="status" data-testid="customer-card-error" title={context.message}>
          {t("customer.error")}
        </p>
      )}
      {context.status === "ready" &&
        (context.rows.length === 0 ? (
          <p class="muted" data-testid="customer-card-empty">
            {t("customer.empty")}
          </p>
        ) : (
          <dl class="customer-fields">
            {context.rows.map(([label, value], index) => (
              <div class="customer-field" data-testid="customer-field" data-label={label} key={`${index}-${label}`}>
                <dt>{label}</dt>
                <dd>{value}</dd>
              </div>
            ))}
          </dl>
        ))}
    </section>
  );
}
