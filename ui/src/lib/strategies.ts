// What each strategy would do with the live pool right now, in words, for
// the Learn page. It mirrors the engine's choice (crates/engine/src/upstream
// pool.rs) from the same report the window shows.
import type { Strategy, UpstreamReport } from "../bindings";
import { t, tList, tn } from "../i18n/index.svelte";
import { formatMs } from "./format";

export function strategyPick(strategy: Strategy, upstreams: UpstreamReport[]): string {
  const healthy = upstreams.filter((u) => u.healthy);
  if (healthy.length === 0) return t("pick.none_healthy");
  const down = upstreams.filter((u) => !u.healthy).map((u) => u.name);
  const skipped = down.length > 0 ? tn("pick.skipped", down.length, { names: tList(down) }) : "";
  switch (strategy) {
    case "roundrobin": {
      const weighted = healthy.some((u) => u.weight !== 1);
      const names = tList(healthy.map((u) => u.name));
      return t(weighted ? "pick.roundrobin_weighted" : "pick.roundrobin", { names, skipped });
    }
    case "leastconn": {
      // The engine weighs open connections by each upstream's weight.
      const load = (u: UpstreamReport) => u.open_connections / Math.max(1, u.weight);
      const best = healthy.reduce((a, b) => (load(b) < load(a) ? b : a));
      return t("pick.leastconn", { name: best.name, open: best.open_connections, skipped });
    }
    case "first": {
      const [first, ...rest] = healthy;
      if (rest.length === 0) return t("pick.first", { name: first.name, skipped });
      return tn("pick.first_fallbacks", rest.length, {
        name: first.name,
        fallbacks: tList(rest.map((u) => u.name)),
        skipped,
      });
    }
    case "fastest": {
      const measured = healthy.filter((u) => u.latency_ms !== null);
      if (measured.length === 0) return t("pick.fastest_none");
      const best = measured.reduce((a, b) => ((b.latency_ms ?? Infinity) < (a.latency_ms ?? Infinity) ? b : a));
      return t("pick.fastest", { name: best.name, latency: formatMs(best.latency_ms), skipped });
    }
  }
}
