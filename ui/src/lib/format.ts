// Human units for the numbers Veil shows. Bytes use decimal (SI) units, as
// network speeds do: 1 KB = 1000 bytes.

const UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];

function finite(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** 0 -> "0 B", 1234 -> "1.2 KB", 1_200_000 -> "1.2 MB", 123_456 -> "123 KB". */
export function formatBytes(n: number): string {
  let v = finite(n);
  let i = 0;
  while (v >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  // 999_999 would round to "1000 KB": say "1.0 MB" instead.
  if (Math.round(v) >= 1000 && i < UNITS.length - 1) {
    v /= 1000;
    i++;
  }
  // One decimal below 100, none above; 99.96 rounds up to the next unit's "100".
  const text = v < 99.95 ? v.toFixed(1) : Math.round(v).toString();
  return `${text} ${UNITS[i]}`;
}

/** Bytes per second: 1500 -> "1.5 KB/s". */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** Seconds as the two largest units: 45 -> "45 s", 125 -> "2 min 5 s", 3700 -> "1 h 1 min", 90000 -> "1 d 1 h". */
export function formatDuration(seconds: number): string {
  const s = Math.floor(finite(seconds));
  if (s < 60) return `${s} s`;
  const parts: [number, string][] = [
    [Math.floor(s / 86400), "d"],
    [Math.floor((s % 86400) / 3600), "h"],
    [Math.floor((s % 3600) / 60), "min"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([v]) => v > 0);
  const shown = parts.slice(first, first + 2).filter(([v], i) => i === 0 || v > 0);
  return shown.map(([v, u]) => `${v} ${u}`).join(" ");
}

/** Milliseconds of latency: 87 -> "87 ms", 1530 -> "1.5 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A ratio 0..1 as a percentage: 0.423 -> "42%"; null (no data) -> "—". */
export function formatPercent(ratio: number | null): string {
  if (ratio === null || !Number.isFinite(ratio)) return "—";
  const pct = Math.min(Math.max(ratio, 0), 1) * 100;
  return pct > 0 && pct < 1 ? "<1%" : `${Math.round(pct)}%`;
}

/** Hits over lookups, or null when there were none. */
export function ratio(hits: number, misses: number): number | null {
  const total = hits + misses;
  return total > 0 ? hits / total : null;
}

/** A count with thousands separators: 12345 -> "12,345". */
export function formatCount(n: number): string {
  return Math.round(finite(n)).toLocaleString("en-US");
}

/** A wall-clock time for "checked at" lines. */
export function formatClock(unixMs: number): string {
  return new Date(unixMs).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** How long ago something was opened, from two unix-ms instants. */
export function formatAge(openedUnixMs: number, nowUnixMs: number): string {
  return formatDuration((nowUnixMs - openedUnixMs) / 1000);
}

/** "1 app" / "3 apps". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
