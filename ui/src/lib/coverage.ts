import type { CoverageApp, CoverageClass, CoverageTotals } from "../bindings";
import { tn } from "../i18n/index.svelte";
import { CLASS_ORDER } from "./labels";

/** "3 apps covered, 2 bypassing, 1 using UDP; a VPN would capture all 6." */
export function totalsSentence(t: CoverageTotals): string {
  return tn("coverage.totals", t.covered, { bypassing: t.bypassing, udp: t.udp, vpn: t.vpn_would_capture });
}

/** Worst first (bypassing, UDP, through Veil, local only), then by name. */
export function sortApps(apps: CoverageApp[]): CoverageApp[] {
  return [...apps].sort(
    (a, b) => CLASS_ORDER.indexOf(a.class) - CLASS_ORDER.indexOf(b.class) || a.name.localeCompare(b.name),
  );
}

export function countByClass(apps: CoverageApp[]): Record<CoverageClass, number> {
  const c: Record<CoverageClass, number> = { through_veil: 0, bypassing: 0, udp: 0, local_only: 0 };
  for (const a of apps) c[a.class] += 1;
  return c;
}
