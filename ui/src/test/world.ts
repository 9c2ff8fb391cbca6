// A backend with every command answered and every part of every page filled
// (upstreams up and down, alerts, a drift, apps, hosts, connections, leaks), so
// the whole-window tests (axe, the Chinese rendering) see as much as possible.
import type { HistoryReport, IpReport, Settings, UpstreamReport } from "../bindings";
import { coverage, handler, leaks, settings, stats, status, sysproxy, upstream, type Calls } from "./fixtures";

export const PAGES = ["overview", "upstreams", "coverage", "traffic", "cache", "learn", "settings"] as const;
export type PageId = (typeof PAGES)[number];

const NOW = 1_700_000_000_000;

function report(name: string, healthy: boolean): UpstreamReport {
  return {
    name,
    url: `socks5://${name}:1080`,
    healthy,
    open_connections: healthy ? 2 : 0,
    total_connections: 9,
    bytes_up: 1200,
    bytes_down: 54_000,
    latency_ms: healthy ? 42 : null,
    last_error: healthy ? null : "connection refused",
    weight: 1,
  };
}

export const ipReport: IpReport = {
  direct: { ip: "203.0.113.5", endpoint: "https://api.ipify.org", elapsed_ms: 80, failures: [] },
  via_proxy: {
    ip: null,
    endpoint: null,
    elapsed_ms: 140,
    failures: [{ endpoint: "https://icanhazip.com", error: "timed out" }],
  },
  verdict: "unknown",
  reason: "No endpoint answered through Veil.",
  checked_unix_ms: NOW,
  direct_off: false,
};

export function worldStats() {
  return stats({
    mode: "proxy",
    strategy: "roundrobin",
    upstreams: [report("home", true), report("vps", false)],
    apps: [{ app: "firefox", bytes_up: 600, bytes_down: 6000, connections: 1, resolved_locally: 0, resolved_locally_targets: [] }],
    hosts: [{ host: "example.com", bytes_up: 600, bytes_down: 6000, connections: 1, requests: 4 }],
    connections: [
      {
        id: 1,
        client: "127.0.0.1:50000",
        protocol: "CONNECT",
        target: "example.com:443",
        opened_unix_ms: NOW - 125_000,
        bytes_up: 600,
        bytes_down: 6000,
        upstream: "home",
        app: { pid: 100, name: "firefox", exe: null },
      },
      {
        id: 2,
        client: "127.0.0.1:50001",
        protocol: "HTTP",
        target: "neverssl.com:80",
        opened_unix_ms: NOW - 5_000,
        bytes_up: 10,
        bytes_down: 20,
        upstream: null,
        app: null,
      },
    ],
  });
}

function history(range: "hour" | "day" | "week"): HistoryReport {
  return {
    range,
    bucket_s: 60,
    series: [
      { unix_ms: NOW - 60_000, bytes_up: 600, bytes_down: 6000 },
      { unix_ms: NOW, bytes_up: 900, bytes_down: 9000 },
    ],
    apps: [{ key: "firefox", bytes_up: 600, bytes_down: 6000, spark: [1, 5, 2] }],
    hosts: [{ key: "example.com", bytes_up: 600, bytes_down: 6000, spark: [0, 3] }],
  };
}

/** The mockIPC handler of the whole world. */
export function world(calls: Calls = [], saved: Partial<Settings> = {}) {
  const st = status({
    selection: { kind: "pool" },
    stats: worldStats(),
    ip: ipReport,
    alerts: [{ at_unix_ms: NOW, what: "Veil is not listening", why: "the new listener did not start" }],
    system_proxy: sysproxy({
      on: true,
      drift: {
        cause: "network",
        backend: "gnome",
        detail: "mode reads back as 'none'",
        now: "off (direct)",
        since_unix_ms: NOW,
      },
    }),
  });
  return handler(
    {
      get_status: st,
      get_settings: settings(saved),
      list_upstreams: [upstream(), upstream({ name: "vps", url: "http://vps.example:3128", has_password: false })],
      check_ip: ipReport,
      system_proxy_settings: [
        { backend: "gnome", field: "mode", now: "none", saved: "manual" },
        { backend: "gnome", field: "http", now: "-", saved: "127.0.0.1:7890" },
      ],
      scan_coverage: coverage(),
      check_leaks: leaks(),
      get_history: (a) => history(a.range as "hour"),
      get_fallback_direct: false,
      dismiss_alerts: st,
    },
    calls,
  );
}
