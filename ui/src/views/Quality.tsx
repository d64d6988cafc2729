import { useI18n } from "../context";
import type { MessageKey } from "../i18n";
import { THRESHOLDS, type Call, type QualityWarning } from "../state";

const SPARK_WIDTH = 240;
const SPARK_HEIGHT = 40;
const MOS_MIN = 1;
const MOS_MAX = 5;

/** SVG polyline points for MOS values (1..5) over a fixed-size box. */
export function sparklinePoints(values: number[], width = SPARK_WIDTH, height = SPARK_HEIGHT): string {
  if (values.length === 0) return "";
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((value, i) => {
      const clamped = Math.min(MOS_MAX, Math.max(MOS_MIN, value));
      const y = height - ((clamped - MOS_MIN) / (MOS_MAX - MOS_MIN)) * height;
      return `${(i * step).toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

export function Sparkline({ values, label }: { values: number[]; label: string }) {
  const thresholdY = SPARK_HEIGHT - ((THRESHOLDS.mos - MOS_MIN) / (MOS_MAX - MOS_MIN)) * SPARK_HEIGHT;
  return (
    <svg
      class="sparkline"
      data-testid="mos-sparkline"
      role="img"
      aria-label={label}
      viewBox={`0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`}
      width={SPARK_WIDTH}
      height={SPARK_HEIGHT}
    >
      <line class="sparkline-threshold" x1="0" x2={SPARK_WIDTH} y1={thresholdY} y2={thresholdY} />
      {values.length > 1 && <polyline class="sparkline-line" points={sparklinePoints(values)} />}
      {values.length === 1 && <circle class="sparkline-dot" cx="0" cy={sparklinePoints(values).split(",")[1]} r="2" />}
    </svg>
  );
}

type Metric = { id: QualityWarning; label: MessageKey; value: string };

export function QualityPanel({ call }: { call: Call }) {
  const { t } = useI18n();
  const q = call.quality;
  const metrics: Metric[] = q
    ? [
        { id: "mos", label: "quality.mos", value: q.mos === null ? "—" : q.mos.toFixed(1) },
        { id: "loss", label: "quality.loss", value: `${Math.max(q.loss_percent ?? 0, q.remote_loss_percent ?? 0).toFixed(1)} %` },
        { id: "jitter", label: "quality.jitter", value: q.jitter_ms === null ? "—" : `${Math.round(q.jitter_ms)} ms` },
        { id: "rtt", label: "quality.rtt", value: q.rtt_ms === null ? "—" : `${Math.round(q.rtt_ms)} ms` },
      ]
    : [];
  const poor = call.warnings.length > 0;
  return (
    <section class="quality" aria-label={t("quality.title")} data-testid="quality-panel" data-poor={poor ? "true" : "false"}>
      <h3 class="section-title">{t("quality.title")}</h3>
      {call.codec !== null && (
        <p class={call.srtp !== null ? "encryption ok" : "encryption muted"} data-testid="call-encryption" data-encrypted={call.srtp !== null ? "true" : "false"}>
          {call.srtp !== null ? t("quality.encrypted", { suite: call.srtp }) : t("quality.unencrypted")}
        </p>
      )}
      {q === null ? (
        <p class="muted">{t("quality.none")}</p>
      ) : (
        <>
          <p class={poor ? "quality-summary warn" : "quality-summary ok"} role="status" aria-live="polite" data-testid="quality-summary">
            {poor ? t("quality.poorList", { list: call.warnings.map((w) => t(`quality.warn.${w}`)).join(", ") }) : t("quality.good")}
          </p>
          <dl class="metrics">
            {metrics.map((metric) => {
              const warn = call.warnings.includes(metric.id);
              return (
                <div class={warn ? "metric warn" : "metric"} key={metric.id} data-testid={`quality-${metric.id}`} data-warning={warn ? "true" : "false"}>
                  <dt>{t(metric.label)}</dt>
                  <dd>
                    {warn && <span class="warn-icon" aria-hidden="true">⚠ </span>}
                    {metric.value}
                    {warn && <span class="visually-hidden"> ({t(`quality.warn.${metric.id}`)})</span>}
                  </dd>
                </div>
              );
            })}
          </dl>
          <Sparkline values={call.mosHistory} label={t("quality.sparkline")} />
        </>
      )}
    </section>
  );
}
