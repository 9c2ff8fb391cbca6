// Human units for the numbers Veil shows, in the window's locale: digits,
// separators and percentages from Intl, unit words from the catalogue.
// Bytes use decimal (SI) units, as network speeds do: 1 KB = 1000 bytes.
import { i18n, t } from "../i18n/index.svelte";

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

function finite(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** A number in the current locale with exactly `digits` decimals. */
function fixed(v: number, digits: number): string {
  return new Intl.NumberFormat(i18n.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
}

/** 0 -> "0 B", 1234 -> "1.2 KB", 1_200_000 -> "1.2 MB", 123_456 -> "123 KB". */
export function formatBytes(n: number): string {
  let v = finite(n);
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${fixed(Math.round(v), 0)} B`;
  // 999_999 would round to "1000 KB": say "1.0 MB" instead.
  if (Math.round(v) >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  // One decimal below 100, none above; 99.96 rounds up to the next unit's "100".
  const text = v < 99.95 ? fixed(v, 1) : fixed(Math.round(v), 0);
  return `${text} ${UNITS[i]}`;
}

/** Bytes per second: 1500 -> "1.5 KB/s". */
export function formatRate(bytesPerSecond: number): string {
  return t("format.rate", { value: formatBytes(bytesPerSecond) });
}

/** Seconds as the two largest units: 45 -> "45 s", 125 -> "2 min 5 s", 3700 -> "1 h 1 min", 90000 -> "1 d 1 h". */
export function formatDuration(seconds: number): string {
  const s = Math.floor(finite(seconds));
  const unit = (v: number, key: "format.days" | "format.hours" | "format.minutes" | "format.seconds") =>
    t(key, { n: fixed(v, 0) });
  if (s < 60) return unit(s, "format.seconds");
  const parts: [number, "format.days" | "format.hours" | "format.minutes" | "format.seconds"][] = [
    [Math.floor(s / 86400), "format.days"],
    [Math.floor((s % 86400) / 3600), "format.hours"],
    [Math.floor((s % 3600) / 60), "format.minutes"],
    [s % 60, "format.seconds"],
  ];
  const first = parts.findIndex(([v]) => v > 0);
  const shown = parts.slice(first, first + 2).filter(([v], i) => i === 0 || v > 0);
  return shown.map(([v, k]) => unit(v, k)).join(" ");
}

/** Milliseconds of latency: 87 -> "87 ms", 1530 -> "1.5 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return t("format.ms", { n: fixed(Math.round(ms), 0) });
  return t("format.seconds", { n: fixed(ms / 1000, 1) });
}

/** A ratio 0..1 as a percentage: 0.423 -> "42%"; null (no data) -> "—". */
export function formatPercent(ratio: number | null): string {
  if (ratio === null || !Number.isFinite(ratio)) return "—";
  const r = Math.min(Math.max(ratio, 0), 1);
  const pct = new Intl.NumberFormat(i18n.locale, { style: "percent", maximumFractionDigits: 0 });
  return r > 0 && r < 0.01 ? t("format.less_than", { value: pct.format(0.01) }) : pct.format(Math.round(r * 100) / 100);
}

/** Hits over lookups, or null when there were none. */
export function ratio(hits: number, misses: number): number | null {
  const total = hits + misses;
  return total > 0 ? hits / total : null;
}

/** A count with the locale's separators: 12345 -> "12,345". */
export function formatCount(n: number): string {
  return new Intl.NumberFormat(i18n.locale, { maximumFractionDigits: 0 }).format(Math.round(finite(n)));
}

/** A wall-clock time for "checked at" lines. */
export function formatClock(unixMs: number): string {
  return new Date(unixMs).toLocaleTimeString(i18n.locale, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** A date and time, e.g. for when something happened on another day. */
export function formatDateTime(unixMs: number): string {
  return new Intl.DateTimeFormat(i18n.locale, { dateStyle: "medium", timeStyle: "short" }).format(new Date(unixMs));
}

/** "5 minutes ago", "in 2 hours": the largest whole unit, in the locale's words. */
export function formatRelative(unixMs: number, nowUnixMs: number): string {
  const s = Math.round((unixMs - nowUnixMs) / 1000);
  const rtf = new Intl.RelativeTimeFormat(i18n.locale, { numeric: "auto" });
  const abs = Math.abs(s);
  if (abs < 60) return rtf.format(s, "second");
  if (abs < 3600) return rtf.format(Math.trunc(s / 60), "minute");
  if (abs < 86400) return rtf.format(Math.trunc(s / 3600), "hour");
  return rtf.format(Math.trunc(s / 86400), "day");
}

/** How long ago something was opened, from two unix-ms instants. */
export function formatAge(openedUnixMs: number, nowUnixMs: number): string {
  return formatDuration((nowUnixMs - openedUnixMs) / 1000);
}

