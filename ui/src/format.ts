import type { Language } from "./types";

/** `mm:ss`, or `h:mm:ss` from one hour; negative or non-finite values count as zero. */
export function formatDuration(totalSeconds: number): string {
  const seconds = Number.isFinite(totalSeconds) ? Math.max(0, Math.floor(totalSeconds)) : 0;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const mmss = `${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

/** Time of day for today's calls, else date and time. */
export function formatCallTime(atMs: number, nowMs: number, language: Language): string {
  const at = new Date(atMs);
  const now = new Date(nowMs);
  const locale = language === "fr" ? "fr-FR" : "en-GB";
  const sameDay =
    at.getFullYear() === now.getFullYear() && at.getMonth() === now.getMonth() && at.getDate() === now.getDate();
  const time = at.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
  if (sameDay) return time;
  return `${at.toLocaleDateString(locale, { day: "2-digit", month: "2-digit" })} ${time}`;
}

/** A typed phone number loses its spaces, dots, dashes and brackets; other addresses stay. */
export function normalizeDialString(text: string): string {
  const trimmed = text.trim();
  if (/^\+?[\d\s().-]+$/.test(trimmed)) {
    const plus = trimmed.startsWith("+") ? "+" : "";
    return plus + trimmed.replace(/\D/g, "");
  }
  return trimmed;
}

export function formatNumber(value: number, digits: number): string {
  return value.toFixed(digits);
}
