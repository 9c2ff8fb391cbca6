// Words for the engine's enums, shared by the pages.
import type { CoverageClass, Selection, Strategy } from "../bindings";

export const STRATEGY_NAMES: Record<Strategy, string> = {
  roundrobin: "round robin",
  leastconn: "least connections",
  first: "first healthy",
  fastest: "fastest",
};

export const STRATEGY_HELP: Record<Strategy, string> = {
  roundrobin: "Each new connection goes to the next upstream in turn (by weight), so requests leave from different IPs.",
  leastconn: "Each new connection goes to the upstream with the fewest open connections.",
  first: "Always the first healthy upstream in the list; the others are fallbacks when it is down.",
  fastest: "The healthy upstream with the lowest measured latency.",
};

export const STRATEGIES: Strategy[] = ["roundrobin", "leastconn", "first", "fastest"];

export function selectionLabel(s: Selection, strategy: Strategy): string {
  switch (s.kind) {
    case "direct":
      return "direct, traffic leaves from this computer's own IP";
    case "pool":
      return `all upstreams, ${STRATEGY_NAMES[strategy]}`;
    case "one":
      return `only the upstream ${s.name}`;
  }
}

export const CLASS_NAMES: Record<CoverageClass, string> = {
  through_veil: "Through Veil",
  bypassing: "Bypassing",
  udp: "UDP",
  local_only: "Local only",
};

export const CLASS_BADGE: Record<CoverageClass, string> = {
  through_veil: "good",
  bypassing: "warn",
  udp: "bad",
  local_only: "",
};

export const CLASS_ORDER: CoverageClass[] = ["bypassing", "udp", "through_veil", "local_only"];
