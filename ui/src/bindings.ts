// Types of the app's commands and events (docs/APP-API.md).
// This file is replaced by types generated from the Rust side (ts-rs); keep it
// types-only, with the names of the contract.

export type Mode = "direct" | "proxy";
export type Strategy = "roundrobin" | "leastconn" | "first" | "fastest";
export type Theme = "system" | "light" | "dark";

export interface AppError {
  kind: "invalid" | "config" | "keyring" | "sysproxy" | "engine" | "io" | "network";
  message: string;
}

export type Selection = { kind: "direct" } | { kind: "pool" } | { kind: "one"; name: string };

export interface AppStatus {
  version: string;
  config_path: string;
  selection: Selection;
  system_proxy: SysProxyState;
  stats: StatsSnapshot;
}

export interface SysProxyState {
  on: boolean;
  supported: boolean;
  backends: string[];
  detail: string | null;
}

export interface StatsSnapshot {
  listen: string;
  mode: Mode;
  uptime_s: number;
  connections_open: number;
  connections_total: number;
  requests_total: number;
  rejected_total: number;
  bytes_up: number;
  bytes_down: number;
  rates: RateSample[];
  hosts: HostStats[];
  apps: AppStats[];
  connections: ConnectionInfo[];
  dns: DnsStats;
  strategy: Strategy;
  upstreams: UpstreamReport[];
  cache: CacheStats;
}

export interface RateSample {
  unix_ms: number;
  up_bps: number;
  down_bps: number;
}

export interface HostStats {
  host: string;
  bytes_up: number;
  bytes_down: number;
  connections: number;
  requests: number;
}

export interface AppStats {
  app: string;
  bytes_up: number;
  bytes_down: number;
  connections: number;
}

export interface ClientApp {
  pid: number;
  name: string;
  exe: string | null;
}

export interface ConnectionInfo {
  id: number;
  client: string;
  protocol: string;
  target: string;
  opened_unix_ms: number;
  bytes_up: number;
  bytes_down: number;
  upstream: string | null;
  app: ClientApp | null;
}

export interface DnsStats {
  hits: number;
  misses: number;
  entries: number;
}

export interface UpstreamReport {
  name: string;
  url: string;
  healthy: boolean;
  open_connections: number;
  total_connections: number;
  bytes_up: number;
  bytes_down: number;
  latency_ms: number | null;
  last_error: string | null;
  weight: number;
}

export interface CacheStats {
  enabled: boolean;
  hits_memory: number;
  hits_disk: number;
  misses: number;
  revalidated_not_modified: number;
  revalidated_changed: number;
  collapsed: number;
  stored: number;
  too_large: number;
  corrupt_dropped: number;
  bytes_served: number;
  origin_bytes_saved: number;
  hit_ratio: number;
  memory_objects: number;
  memory_bytes: number;
  disk_objects: number;
  disk_bytes: number;
}

export interface UpstreamEntry {
  name: string;
  url: string;
  username: string | null;
  has_password: boolean;
  weight: number;
}

export interface UpstreamInput {
  original_name: string | null;
  name: string;
  url: string;
  password: string | null;
  weight: number;
}

export interface UpstreamTest {
  name: string;
  latency_ms: number | null;
  error: string | null;
}

export interface Settings {
  listen: string;
  bypass: string[];
  cache_enabled: boolean;
  cache_memory_mb: number;
  cache_disk_mb: number;
  autostart: boolean;
  ipcheck_endpoints: string[];
  history_retention_days: number;
  theme: Theme;
}

export interface SettingsSaved {
  settings: Settings;
  notice: string | null;
}

export type IpVerdict = "masked" | "not_masked" | "unknown";

export interface IpProbe {
  ip: string | null;
  endpoint: string | null;
  elapsed_ms: number;
  failures: EndpointFailure[];
}

export interface EndpointFailure {
  endpoint: string;
  error: string;
}

export interface IpReport {
  direct: IpProbe;
  via_proxy: IpProbe;
  verdict: IpVerdict;
  reason: string;
  checked_unix_ms: number;
}

export type CoverageClass = "through_veil" | "bypassing" | "udp" | "local_only";

export interface CoverageApp {
  name: string;
  exe: string | null;
  pids: number[];
  class: CoverageClass;
  through_veil: number;
  bypassing: number;
  udp: number;
  local_only: number;
  remotes: string[];
  vpn_captures: boolean;
  known: KnownApp | null;
}

export interface KnownApp {
  family: string;
  why: string;
  remedy: string;
}

export interface CoverageTotals {
  apps: number;
  covered: number;
  bypassing: number;
  udp: number;
  local_only: number;
  vpn_would_capture: number;
}

export interface CoverageReport {
  listen: string;
  scanned_unix_ms: number;
  scan_ms: number;
  totals: CoverageTotals;
  apps: CoverageApp[];
}

export type HistoryRange = "hour" | "day" | "week";

export interface HistoryPoint {
  unix_ms: number;
  bytes_up: number;
  bytes_down: number;
}

export interface HistoryRow {
  key: string;
  bytes_up: number;
  bytes_down: number;
  spark: number[];
}

export interface HistoryReport {
  range: HistoryRange;
  bucket_s: number;
  series: HistoryPoint[];
  apps: HistoryRow[];
  hosts: HistoryRow[];
}
