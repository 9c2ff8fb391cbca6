// Words and helpers for the leak checks (the Coverage page's Leaks section
// and the findings beside the Learn page's paragraphs).
import type { LeakCheck, LeakCheckId, LeakReport, Verdict } from "../bindings";
import { t, tn } from "../i18n/index.svelte";

export function verdictName(v: Verdict): string {
  return t(`verdict.${v}`);
}

/** The shared badge classes of app.css. */
export const VERDICT_BADGE: Record<Verdict, string> = {
  pass: "good",
  warn: "warn",
  fail: "bad",
  unknown: "",
};

/** "2 warnings, 1 unknown, 4 passed." as `veil leaks` prints it. */
export function leakSummary(report: LeakReport): string {
  const count = (v: Verdict) => report.checks.filter((c) => c.verdict === v).length;
  const parts: string[] = [];
  const fail = count("fail");
  if (fail > 0) parts.push(tn("leaks.failed", fail));
  const warn = count("warn");
  if (warn > 0) parts.push(tn("leaks.warnings", warn));
  const unknown = count("unknown");
  if (unknown > 0) parts.push(tn("leaks.unknown", unknown));
  parts.push(tn("leaks.passed", count("pass")));
  return t("leaks.summary", { parts: parts.join(t("common.list_sep")) });
}

/** The checks of `ids` in that order, those the report has. */
export function checksFor(report: LeakReport | null, ids: LeakCheckId[]): LeakCheck[] {
  if (!report) return [];
  return ids.flatMap((id) => report.checks.filter((c) => c.id === id));
}
