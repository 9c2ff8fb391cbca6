// Generated from the Rust types by `make bindings` (src-tauri/src/bindings.rs).
// Do not edit: a test fails when this file and the Rust types differ.

export type Mode = "direct" | "proxy";

export type Strategy = "roundrobin" | "leastconn" | "first" | "fastest";

export type StatsSnapshot = { listen: string, mode: Mode, uptime_s: number, connections_open: number, connections_total: number, requests_total: number, rejected_total: number, bytes_up: number, bytes_down: number, 
/**
 * Oldest first, one per second, up to five minutes.
 */
rates: Array<RateSample>, 
/**
 * Busiest first.
 */
hosts: Array<HostStats>, 
/**
 * Per client app, busiest first.
 */
apps: Array<AppStats>, connections: Array<ConnectionInfo>, dns: DnsStats, strategy: Strategy, 
/**
 * Every configured upstream with its health and counters.
 */
upstreams: Array<UpstreamReport>, 
/**
 * The HTTP cache (plain HTTP only; HTTPS is never cached).
 */
cache: CacheStats, };

export type RateSample = { unix_ms: number, up_bps: number, down_bps: number, };

export type HostStats = { host: string, bytes_up: number, bytes_down: number, 
/**
 * Tunnels (CONNECT, SOCKS5) opened to this host.
 */
connections: number, 
/**
 * Plain-HTTP requests forwarded to this host.
 */
requests: number, };

export type ConnectionInfo = { id: number, client: string, 
/**
 * `http`, `connect`, `socks5`, or `pending` before the first request.
 */
protocol: string, target: string, opened_unix_ms: number, bytes_up: number, bytes_down: number, 
/**
 * The name of the upstream carrying it; `None` when it goes direct.
 */
upstream: string | null, 
/**
 * The client process; `None` while unknown or when the lookup failed.
 */
app: ClientApp | null, };

export type ClientApp = { pid: number, 
/**
 * The program's name (the executable's file name where it is known).
 */
name: string, 
/**
 * The executable's full path, when the OS lets Veil read it.
 */
exe: string | null, };

export type AppStats = { app: string, bytes_up: number, bytes_down: number, connections: number, };

export type DnsStats = { hits: number, misses: number, entries: number, };

export type UpstreamReport = { name: string, url: string, healthy: boolean, open_connections: number, total_connections: number, bytes_up: number, bytes_down: number, latency_ms: number | null, last_error: string | null, weight: number, };

export type CacheStats = { enabled: boolean, 
/**
 * Fresh responses served from memory without asking the origin.
 */
hits_memory: number, 
/**
 * Fresh responses served from disk without asking the origin.
 */
hits_disk: number, 
/**
 * Cacheable requests (GET/HEAD) that found nothing usable stored.
 */
misses: number, 
/**
 * Stale entries the origin confirmed with 304 Not Modified.
 */
revalidated_not_modified: number, 
/**
 * Stale entries the origin replaced with a new response.
 */
revalidated_changed: number, 
/**
 * Requests that waited for another request's origin fetch.
 */
collapsed: number, 
/**
 * Responses written to the cache.
 */
stored: number, 
/**
 * Responses passed through because they were over the object limit.
 */
too_large: number, 
/**
 * Disk entries that failed their integrity check and were deleted.
 */
corrupt_dropped: number, 
/**
 * Body bytes sent to clients from the cache.
 */
bytes_served: number, 
/**
 * Body bytes the origin did not have to send (hits and 304s).
 */
origin_bytes_saved: number, 
/**
 * Hits and 304s over all cache lookups, 0 to 1.
 */
hit_ratio: number, memory_objects: number, memory_bytes: number, disk_objects: number, disk_bytes: number, };

export type EngineEvent = { "kind": "connection_opened", id: number, client: string, } | { "kind": "connection_routed", id: number, protocol: string, target: string, } | { "kind": "connection_closed", id: number, bytes_up: number, bytes_down: number, } | { "kind": "upstream_up", name: string, } | { "kind": "upstream_down", name: string, reason: string, } | { "kind": "shutting_down" };

export type Theme = "system" | "light" | "dark";

export type Alert = { 
/**
 * When it happened (Unix milliseconds).
 */
at_unix_ms: number, 
/**
 * What changed, in the user's words ("The system proxy is off").
 */
what: string, 
/**
 * Why, with the error that caused it.
 */
why: string, };

export type IpVerdict = "masked" | "not_masked" | "unknown";

export type IpProbe = { 
/**
 * The public IP this path showed.
 */
ip: string | null, 
/**
 * Which endpoint answered.
 */
endpoint: string | null, elapsed_ms: number, 
/**
 * Endpoints tried before (or instead of) the answer.
 */
failures: Array<EndpointFailure>, };

export type EndpointFailure = { endpoint: string, error: string, };

export type IpReport = { direct: IpProbe, 
/**
 * Through Veil's own listener, the path apps take.
 */
via_proxy: IpProbe, verdict: IpVerdict, 
/**
 * One sentence: why masked, NOT masked or unknown.
 */
reason: string, checked_unix_ms: number, 
/**
 * The real IP was not checked (the direct check is off): the verdict
 * rests on the exit IP alone.
 */
direct_off: boolean, };

export type HistoryRange = "hour" | "day" | "week";

export type HistoryPoint = { 
/**
 * Start of the bucket.
 */
unix_ms: number, bytes_up: number, bytes_down: number, };

export type HistoryRow = { key: string, bytes_up: number, bytes_down: number, 
/**
 * Bytes (up + down) per bucket, oldest first, one per series point.
 */
spark: Array<number>, };

export type HistoryReport = { range: HistoryRange, bucket_s: number, 
/**
 * Every bucket of the window, oldest first, zero where nothing moved.
 */
series: Array<HistoryPoint>, 
/**
 * Busiest first, at most [`MAX_ROWS`].
 */
apps: Array<HistoryRow>, hosts: Array<HistoryRow>, };

export type CoverageClass = "bypassing" | "udp" | "through_veil" | "local_only";

export type KnownApp = { family: string, why: string, remedy: string, };

export type CoverageApp = { name: string, exe: string | null, pids: Array<number>, class: CoverageClass, 
/**
 * Socket counts of each kind.
 */
through_veil: number, bypassing: number, udp: number, local_only: number, 
/**
 * A few remote addresses it reaches directly (bypassing or UDP).
 */
remotes: Array<string>, 
/**
 * A full-system VPN would carry its traffic.
 */
vpn_captures: boolean, known: KnownApp | null, };

export type CoverageTotals = { apps: number, covered: number, bypassing: number, udp: number, local_only: number, vpn_would_capture: number, };

export type CoverageReport = { 
/**
 * Veil's listener the scan compared against.
 */
listen: string, scanned_unix_ms: number, 
/**
 * How long the scan took.
 */
scan_ms: number, totals: CoverageTotals, 
/**
 * Worst class first, then by name.
 */
apps: Array<CoverageApp>, };

export type ErrorKind = "invalid" | "config" | "keyring" | "sysproxy" | "engine" | "io" | "network";

export type AppError = { kind: ErrorKind, message: string, };

export type Selection = { "kind": "direct" } | { "kind": "pool" } | { "kind": "one", name: string, };

export type SysProxyState = { 
/**
 * Veil has pointed the OS at itself.
 */
on: boolean, 
/**
 * A desktop backend was found (GNOME, KDE, Windows, macOS).
 */
supported: boolean, backends: Array<string>, 
/**
 * Why it is unsupported, or what the OS has when it is not Veil.
 */
detail: string | null, };

export type AttachedTo = { 
/**
 * The process that runs the engine (`veil run`).
 */
pid: number, 
/**
 * A sentence for the window: whose engine this is and what works.
 */
note: string, 
/**
 * Set when that engine stopped answering.
 */
error: string | null, };

export type AppStatus = { version: string, config_path: string, selection: Selection, system_proxy: SysProxyState, 
/**
 * The last masked-IP check, if one finished.
 */
ip: IpReport | null, 
/**
 * What failed on its own and changed what Veil does (newest last).
 */
alerts: Array<Alert>, stats: StatsSnapshot, 
/**
 * Set when the engine is `veil run`'s, not this app's: what works
 * from the window then.
 */
attached: AttachedTo | null, };

export type UpstreamEntry = { name: string, url: string, username: string | null, has_password: boolean, weight: number, };

export type UpstreamInput = { original_name: string | null, name: string, url: string, password: string | null, weight: number, };

export type UpstreamTest = { name: string, latency_ms: number | null, error: string | null, };

export type Settings = { listen: string, bypass: Array<string>, cache_enabled: boolean, cache_memory_mb: number, cache_disk_mb: number, autostart: boolean, 
/**
 * `http(s)` URLs only, asked through Veil.
 */
ipcheck_endpoints: Array<string>, 
/**
 * "Check my real IP directly" (other endpoints, after a random pause).
 */
ipcheck_direct: boolean, history_retention_days: number, theme: Theme, };

export type SettingsSaved = { settings: Settings, 
/**
 * What changed that the user should know, e.g. the new listener.
 */
notice: string | null, };
