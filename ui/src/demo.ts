// Dev-only stand-in for the Rust side, to work on the window in a plain browser:
//   VITE_VEIL_DEMO=1 npm run dev
// It is imported only when import.meta.env.DEV is true, so builds never carry it.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import type { AppStatus, HistoryRange, IpReport, Settings, StatsSnapshot, UpstreamEntry, UpstreamInput } from "./bindings";
import { cacheStats, coverage, leaks, settings, stats, status } from "./test/fixtures";

export function install(): void {
  const t0 = Date.now();
  let upstreams: UpstreamEntry[] = [
    { name: "home", url: "socks5://me@203.0.113.20:1080", username: "me", has_password: true, weight: 1, exit: null },
    { name: "vps-fra", url: "http://198.51.100.7:3128", username: null, has_password: false, weight: 2, exit: null },
  ];
  let current: AppStatus = status({ selection: { kind: "pool" } });
  let conf: Settings = settings();
  let down = 48_000_000;
  let up = 3_100_000;
  const rates: StatsSnapshot["rates"] = [];
  for (let i = 240; i > 0; i--) {
    rates.push({ unix_ms: t0 - i * 1000, up_bps: 2000 + Math.random() * 8000, down_bps: 20000 + Math.random() * 200000 });
  }

  function snapshot(): StatsSnapshot {
    return stats({
      mode: "proxy",
      uptime_s: Math.floor((Date.now() - t0) / 1000) + 3600,
      bytes_down: down,
      bytes_up: up,
      connections_open: 3,
      rates: rates.slice(-300),
      apps: [
        { app: "firefox", bytes_up: up * 0.7, bytes_down: down * 0.8, connections: 2, resolved_locally: 0, resolved_locally_targets: [] },
        {
          app: "curl", bytes_up: up * 0.3, bytes_down: down * 0.2, connections: 1,
          resolved_locally: 2, resolved_locally_targets: ["93.184.216.34:443"],
        },
      ],
      hosts: [
        { host: "www.wikipedia.org", bytes_up: 90_000, bytes_down: 22_000_000, connections: 4, requests: 31 },
        { host: "neverssl.com", bytes_up: 4_000, bytes_down: 1_300_000, connections: 1, requests: 9 },
        { host: "api.github.com", bytes_up: 18_000, bytes_down: 640_000, connections: 2, requests: 12 },
      ],
      connections: [
        {
          id: 1, client: "127.0.0.1:51000", protocol: "CONNECT", target: "www.wikipedia.org:443",
          opened_unix_ms: t0 - 95_000, bytes_up: 20_000, bytes_down: 4_800_000, upstream: "home",
          app: { pid: 4242, name: "firefox", exe: "/usr/lib/firefox/firefox" },
        },
        {
          id: 2, client: "127.0.0.1:51002", protocol: "HTTP", target: "neverssl.com:80",
          opened_unix_ms: t0 - 4_000, bytes_up: 900, bytes_down: 52_000, upstream: "vps-fra", app: null,
        },
        {
          id: 3, client: "127.0.0.1:51010", protocol: "SOCKS5", target: "api.github.com:443",
          opened_unix_ms: t0 - 3_600_000, bytes_up: 8_000, bytes_down: 120_000, upstream: null,
          app: { pid: 5151, name: "curl", exe: "/usr/bin/curl" },
        },
      ],
      upstreams: upstreams.map((u, i) => ({
        name: u.name, url: u.url, healthy: i === 0, open_connections: i === 0 ? 2 : 0, total_connections: 40 - i * 25,
        bytes_up: up / (i + 2), bytes_down: down / (i + 2), latency_ms: i === 0 ? 48 : null,
        last_error: i === 0 ? null : "connection refused by 198.51.100.7:3128", weight: u.weight,
      })),
      cache: cacheStats({ hits_memory: 120, hits_disk: 35, misses: 210, hit_ratio: 155 / 365, origin_bytes_saved: 18_400_000 }),
      strategy: current.stats.strategy,
    });
  }

  const ip: IpReport = {
    direct: { ip: "192.0.2.44", endpoint: "https://api.ipify.org", elapsed_ms: 120, failures: [] },
    via_proxy: { ip: "203.0.113.20", endpoint: "https://api.ipify.org", elapsed_ms: 340, failures: [] },
    verdict: "masked",
    reason: "Sites see 203.0.113.20 through Veil instead of your own 192.0.2.44.",
    checked_unix_ms: Date.now(),
    direct_off: false,
  };

  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

  mockIPC(
    async (cmd, raw) => {
      const args = (raw ?? {}) as Record<string, unknown>;
      current = { ...current, stats: snapshot() };
      switch (cmd) {
        case "get_status":
          return current;
        case "set_system_proxy":
          await wait(300);
          current = { ...current, system_proxy: { ...current.system_proxy, on: args.on as boolean } };
          return current.system_proxy;
        case "set_selection":
          current = { ...current, selection: args.selection as AppStatus["selection"] };
          return current;
        case "set_strategy":
          current = { ...current, stats: { ...current.stats, strategy: args.strategy as StatsSnapshot["strategy"] } };
          return current;
        case "list_upstreams":
          return upstreams;
        case "save_upstream": {
          const u = args.upstream as UpstreamInput;
          if (u.name === "fail") throw { kind: "keyring", message: "No OS keyring is running, so the password cannot be stored. Start your keyring and try again." };
          const entry: UpstreamEntry = { name: u.name, url: u.url, username: null, has_password: !!u.password, weight: u.weight, exit: null };
          upstreams = upstreams.filter((x) => x.name !== (u.original_name ?? u.name)).concat(entry);
          return upstreams;
        }
        case "remove_upstream":
          upstreams = upstreams.filter((x) => x.name !== args.name);
          return upstreams;
        case "test_upstream":
          await wait(500);
          return args.name === "home"
            ? { name: "home", latency_ms: 51, error: null }
            : { name: args.name, latency_ms: null, error: "connection refused" };
        case "cache_clear":
          return cacheStats({ memory_objects: 0, memory_bytes: 0, disk_objects: 0, disk_bytes: 0 });
        case "get_settings":
          return conf;
        case "save_settings":
          conf = args.settings as Settings;
          return { settings: conf, notice: "Saved. Some changes apply after a restart." };
        case "check_ip":
          await wait(800);
          return { ...ip, checked_unix_ms: Date.now() };
        case "scan_coverage":
          return { ...coverage(), scanned_unix_ms: Date.now() };
        case "check_leaks":
          return { ...leaks(), checked_unix_ms: Date.now() };
        case "get_history": {
          const range = args.range as HistoryRange;
          const bucket = range === "hour" ? 60 : range === "day" ? 900 : 3600;
          const n = range === "hour" ? 60 : range === "day" ? 96 : 168;
          const series = Array.from({ length: n }, (_, i) => ({
            unix_ms: Date.now() - (n - i) * bucket * 1000,
            bytes_up: bucket * (1000 + Math.random() * 4000),
            bytes_down: bucket * (10000 + Math.random() * 90000 * (1 + Math.sin(i / 6))),
          }));
          const spark = () => Array.from({ length: 24 }, () => Math.random() * 100);
          return {
            range, bucket_s: bucket, series,
            apps: [{ key: "firefox", bytes_up: 1, bytes_down: 1, spark: spark() }, { key: "curl", bytes_up: 1, bytes_down: 1, spark: spark() }],
            hosts: ["www.wikipedia.org", "neverssl.com", "api.github.com"].map((key) => ({ key, bytes_up: 1, bytes_down: 1, spark: spark() })),
          };
        }
        case "export_history_csv":
          return `/home/you/Downloads/veil-history-${String(args.range)}.csv`;
        default:
          throw { kind: "engine", message: `The demo has no answer for ${cmd}.` };
      }
    },
    { shouldMockEvents: true },
  );

  setInterval(() => {
    const d = 20000 + Math.random() * 250000;
    const u = 2000 + Math.random() * 9000;
    down += d;
    up += u;
    rates.push({ unix_ms: Date.now(), up_bps: u, down_bps: d });
    void emit("veil://stats", snapshot());
  }, 1000);
}
