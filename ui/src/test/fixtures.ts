import type {
  AppStatus,
  CacheStats,
  CoverageReport,
  LeakCheck,
  LeakReport,
  Settings,
  StatsSnapshot,
  SysProxyState,
  UpstreamEntry,
} from "../bindings";

export function cacheStats(over: Partial<CacheStats> = {}): CacheStats {
  return {
    enabled: true,
    hits_memory: 3,
    hits_disk: 1,
    misses: 4,
    revalidated_not_modified: 0,
    revalidated_changed: 0,
    collapsed: 0,
    stored: 4,
    too_large: 0,
    corrupt_dropped: 0,
    bytes_served: 5000,
    origin_bytes_saved: 4000,
    hit_ratio: 0.5,
    memory_objects: 4,
    memory_bytes: 40_000,
    disk_objects: 2,
    disk_bytes: 90_000,
    disk_index_bytes: 600,
    invalidations: { unsafe_method: 1, location: 0, route_change: 0, no_store: 0, purge: 0, clear: 0 },
    disk_write_errors: 0,
    ...over,
  };
}

export function stats(over: Partial<StatsSnapshot> = {}): StatsSnapshot {
  return {
    listen: "127.0.0.1:7890",
    mode: "direct",
    uptime_s: 120,
    connections_open: 2,
    connections_total: 10,
    requests_total: 12,
    rejected_total: 0,
    bytes_up: 2_500,
    bytes_down: 1_200_000,
    rates: [
      { unix_ms: 1_700_000_000_000, up_bps: 100, down_bps: 2000 },
      { unix_ms: 1_700_000_001_000, up_bps: 300, down_bps: 5000 },
    ],
    hosts: [],
    apps: [],
    connections: [],
    dns: { hits: 3, misses: 1, entries: 4, proxied_lookups: 0 },
    strategy: "roundrobin",
    upstreams: [],
    cache: cacheStats(),
    ...over,
  };
}

export function sysproxy(over: Partial<SysProxyState> = {}): SysProxyState {
  return { on: false, supported: true, backends: ["gnome"], detail: null, drift: null, ...over };
}

export function status(over: Partial<AppStatus> = {}): AppStatus {
  return {
    version: "0.1.0",
    config_path: "/home/u/.config/veil/config.toml",
    selection: { kind: "direct" },
    system_proxy: sysproxy(),
    ip: null,
    alerts: [],
    stats: stats(),
    attached: null,
    ...over,
  };
}

export function settings(over: Partial<Settings> = {}): Settings {
  return {
    listen: "127.0.0.1:7890",
    bypass: ["localhost", "*.local"],
    cache_enabled: true,
    cache_memory_mb: 64,
    cache_disk_mb: 512,
    cache_share_across_routes: false,
    autostart: false,
    ipcheck_endpoints: ["https://api.ipify.org", "https://icanhazip.com"],
    ipcheck_direct: true,
    history_retention_days: 30,
    theme: "system",
    apps_reach: "manual",
    language: "system",
    keep_running: true,
    ...over,
  };
}

export function upstream(over: Partial<UpstreamEntry> = {}): UpstreamEntry {
  return { name: "home", url: "socks5://me@10.0.0.2:1080", username: "me", has_password: true, weight: 1, exit: null, ...over };
}

export function coverage(): CoverageReport {
  return {
    listen: "127.0.0.1:7890",
    scanned_unix_ms: 1_700_000_000_000,
    scan_ms: 42,
    totals: { apps: 5, covered: 2, bypassing: 1, udp: 1, local_only: 1, vpn_would_capture: 4 },
    apps: [
      {
        name: "firefox",
        exe: "/usr/lib/firefox/firefox",
        pids: [100],
        class: "through_veil",
        through_veil: 4,
        bypassing: 0,
        udp: 0,
        local_only: 0,
        remotes: [],
        vpn_captures: true,
        known: null,
      },
      {
        name: "curl",
        exe: null,
        pids: [101],
        class: "through_veil",
        through_veil: 1,
        bypassing: 0,
        udp: 0,
        local_only: 0,
        remotes: [],
        vpn_captures: true,
        known: null,
      },
      {
        name: "spotify",
        exe: "/usr/bin/spotify",
        pids: [200, 201],
        class: "bypassing",
        through_veil: 0,
        bypassing: 3,
        udp: 0,
        local_only: 0,
        remotes: ["35.186.224.25:443", "104.154.127.126:4070"],
        vpn_captures: true,
        known: { family: "electron", why: "Ignores the system proxy.", remedy: "Set the proxy in its own settings." },
      },
      {
        name: "chrome",
        exe: null,
        pids: [300],
        class: "udp",
        through_veil: 2,
        bypassing: 0,
        udp: 2,
        local_only: 0,
        remotes: ["142.250.1.1:443"],
        vpn_captures: true,
        known: null,
      },
      {
        name: "cupsd",
        exe: null,
        pids: [1],
        class: "local_only",
        through_veil: 0,
        bypassing: 0,
        udp: 0,
        local_only: 1,
        remotes: [],
        vpn_captures: false,
        known: null,
      },
    ],
  };
}

export function leakCheck(over: Partial<LeakCheck> & Pick<LeakCheck, "id">): LeakCheck {
  return {
    title: over.id,
    verdict: "pass",
    looked_at: "",
    found: "",
    why: "",
    todo: "",
    items: [],
    ...over,
  };
}

/** A leak report through an upstream: curl resolved names itself, a dead http_proxy, UDP from chrome. */
export function leaks(over: Partial<LeakReport> = {}): LeakReport {
  return {
    checked_unix_ms: 1_700_000_000_000,
    took_ms: 37,
    route: "upstream",
    verdict: "warn",
    checks: [
      leakCheck({
        id: "resolving_apps",
        title: "Apps that look names up themselves",
        verdict: "warn",
        looked_at: "The targets apps gave Veil since it started.",
        found: "curl looked names up itself before using Veil.",
        why: "An app that sends an address has already asked a resolver for the name.",
        todo: "curl looked these names up itself before using Veil: use --socks5-hostname.",
        items: [{ subject: "curl", detail: "2 requests to an address (93.184.216.34:443): use --socks5-hostname.", verdict: "warn" }],
      }),
      leakCheck({
        id: "proxy_variables",
        title: "Leftover proxy variables",
        verdict: "warn",
        found: "1 of 1 proxy variable points at a port where nothing listens.",
        todo: "Remove the lines listed.",
        items: [
          {
            subject: "http_proxy = http://127.0.0.1:7897 (~/.bashrc line 12)",
            detail: "nothing listens on 127.0.0.1:7897: tools that read it fail to connect",
            verdict: "warn",
          },
        ],
      }),
      leakCheck({
        id: "udp",
        title: "UDP and QUIC",
        verdict: "warn",
        found: "chrome has UDP sockets that Veil cannot carry.",
        why: "A proxy cannot carry these; a VPN would.",
        items: [{ subject: "chrome", detail: "2 UDP sockets (reaches 142.250.1.1:443).", verdict: "warn" }],
      }),
      leakCheck({ id: "browsers", title: "Browser settings that undo the proxy", verdict: "unknown", found: "Google Chrome: no policy." }),
      leakCheck({
        id: "veil_lookups",
        title: "Veil's own lookups for upstream traffic",
        found: "0 local lookups for 40 connections through upstreams.",
      }),
      leakCheck({
        id: "os_resolvers",
        title: "Resolvers this computer uses",
        found: "Names looked up on this computer go to 192.168.1.1 (your router or another machine on this network).",
      }),
      leakCheck({ id: "ipv6", title: "IPv6 exposure", found: "No global IPv6 address on this computer." }),
    ],
    ...over,
  };
}

/** A mockIPC handler from a table of command -> reply (a function gets the args). */
export type Calls = { cmd: string; args: unknown }[];
type Args = Record<string, unknown>;
type Reply = ((args: Args) => unknown) | string | number | boolean | object | null;
export function handler(
  replies: Record<string, Reply>,
  calls: Calls,
): (cmd: string, args?: unknown) => unknown {
  return (cmd, args) => {
    calls.push({ cmd, args });
    if (cmd.startsWith("plugin:event|")) return 1;
    if (!(cmd in replies)) throw { kind: "engine", message: `no mock for ${cmd}` };
    const r = replies[cmd];
    return typeof r === "function" ? r((args ?? {}) as Args) : r;
  };
}
