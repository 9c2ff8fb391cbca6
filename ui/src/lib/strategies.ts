// What each strategy would do with the live pool right now, in words, for
// the Learn page. It mirrors the engine's choice (crates/engine/src/upstream
// pool.rs) from the same report the window shows.
import type { Strategy, UpstreamReport } from "../bindings";

function list(names: string[]): string {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export function strategyPick(strategy: Strategy, upstreams: UpstreamReport[]): string {
  const healthy = upstreams.filter((u) => u.healthy);
  if (healthy.length === 0) return "Right now no upstream is healthy, so none can be picked.";
  const down = upstreams.filter((u) => !u.healthy).map((u) => u.name);
  const skipped = down.length > 0 ? ` (${list(down)} ${down.length === 1 ? "is" : "are"} down and skipped)` : "";
  switch (strategy) {
    case "roundrobin": {
      const weighted = healthy.some((u) => u.weight !== 1);
      return `With your pool: takes turns among ${list(healthy.map((u) => u.name))}${weighted ? ", by weight" : ""}${skipped}.`;
    }
    case "leastconn": {
      // The engine weighs open connections by each upstream's weight.
      const load = (u: UpstreamReport) => u.open_connections / Math.max(1, u.weight);
      const best = healthy.reduce((a, b) => (load(b) < load(a) ? b : a));
      return `With your pool: the next connection would go to ${best.name} (${best.open_connections} open now)${skipped}.`;
    }
    case "first": {
      const [first, ...rest] = healthy;
      const fallbacks = rest.length > 0 ? `; ${list(rest.map((u) => u.name))} ${rest.length === 1 ? "is the fallback" : "are fallbacks"}` : "";
      return `With your pool: ${first.name} carries everything${fallbacks}${skipped}.`;
    }
    case "fastest": {
      const measured = healthy.filter((u) => u.latency_ms !== null);
      if (measured.length === 0) return "With your pool: no latency has been measured yet, so the first healthy upstream is used.";
      const best = measured.reduce((a, b) => ((b.latency_ms ?? Infinity) < (a.latency_ms ?? Infinity) ? b : a));
      return `With your pool: ${best.name} (${best.latency_ms} ms)${skipped}.`;
    }
  }
}
