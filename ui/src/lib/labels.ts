// Words for the engine's enums, shared by the pages, from the catalogue.
import type { CoverageClass, Selection, Strategy } from "../bindings";
import { t } from "../i18n/index.svelte";

export function strategyName(s: Strategy): string {
  return t(`strategy.${s}`);
}

export function strategyHelp(s: Strategy): string {
  return t(`strategy.help.${s}`);
}

export const STRATEGIES: Strategy[] = ["roundrobin", "leastconn", "first", "fastest"];

export function selectionLabel(s: Selection, strategy: Strategy): string {
  switch (s.kind) {
    case "direct":
      return t("selection.direct");
    case "pool":
      return t("selection.pool", { strategy: strategyName(strategy) });
    case "one":
      return t("selection.one", { name: s.name });
  }
}

export function className(c: CoverageClass): string {
  return t(`coverage.class.${c}`);
}

export const CLASS_BADGE: Record<CoverageClass, string> = {
  through_veil: "good",
  bypassing: "warn",
  udp: "bad",
  local_only: "",
};

export const CLASS_ORDER: CoverageClass[] = ["bypassing", "udp", "through_veil", "local_only"];
