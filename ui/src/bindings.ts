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

export type AppStats = { app: string, bytes_up: number, bytes_down: number, connections: number, 
/**
 * Requests and tunnels whose target the app gave as an IP address
 * (`CONNECT 1.2.3.4:443`, SOCKS5 with an IPv4/IPv6 address, plain HTTP
 * to an address): it looked the name up itself, through the OS's
 * resolver, before reaching Veil.
 */
resolved_locally: number, 
/**
 * The first few of those addresses.
 */
resolved_locally_targets: Array<string>, };

export type DnsStats = { hits: number, misses: number, entries: number, 
/**
 * Local lookups made while opening connections routed to an upstream
 * (which resolves names itself): must be 0.
 */
proxied_lookups: number, };

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
hit_ratio: number, memory_objects: number, memory_bytes: number, disk_objects: number, disk_bytes: number, 
/**
 * Memory of the disk tier's in-memory index (bounded at 16 MiB).
 */
disk_index_bytes: number, 
/**
 * Stored responses invalidated, per cause.
 */
invalidations: Invalidations, 
/**
 * Responses the disk tier could not write (a full or failing disk):
 * served all the same, and kept in memory only.
 */
disk_write_errors: number, };

export type Invalidations = { 
/**
 * A successful unsafe method (POST, PUT, DELETE...) to the URL.
 */
unsafe_method: number, 
/**
 * The `Location`/`Content-Location` target of such a response.
 */
location: number, 
/**
 * Stored through another route (upstream) than the request takes now,
 * with sharing across routes off: refetched.
 */
route_change: number, 
/**
 * Replaced on revalidation by a response that may not be stored.
 */
no_store: number, 
/**
 * Purged by the user.
 */
purge: number, 
/**
 * Whole-cache clears by the user.
 */
clear: number, };

export type EngineEvent = { "kind": "connection_opened", id: number, client: string, } | { "kind": "connection_routed", id: number, protocol: string, target: string, } | { "kind": "connection_closed", id: number, bytes_up: number, bytes_down: number, } | { "kind": "upstream_up", name: string, } | { "kind": "upstream_down", name: string, reason: string, } | { "kind": "shutting_down" };

export type Theme = "system" | "light" | "dark";

export type Language = "system" | "en" | "zh-CN";

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

export type AppsReach = "manual" | "pac" | "pac_fail_open";

export type SettingRow = { backend: string, field: string, now: string, 
/**
 * `None` when Veil has saved nothing (it has not changed the setting).
 */
saved: string | null, };

export type DriftCause = "other_program" | "network";

export type SystemProxyDrift = { cause: DriftCause, 
/**
 * The desktop backend (`gnome`, `kde`, `windows`, `macos`).
 */
backend: string, 
/**
 * The first setting that differs, as read back.
 */
detail: string, 
/**
 * What the OS has now, in words.
 */
now: string, 
/**
 * When it was seen (Unix milliseconds).
 */
since_unix_ms: number, };

export type DriftChoice = "reapply" | "always_after_network_change" | "leave";

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

export type ExitIp = { v4: string | null, v6: string | null, 
/**
 * Why there is no IPv6 answer (no IPv6 route behind the upstream, or
 * an endpoint failure).
 */
v6_error: string | null, 
/**
 * Why there is no answer at all.
 */
error: string | null, checked_unix_ms: number, };

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

export type Verdict = "pass" | "unknown" | "warn" | "fail";

export type LeakCheckId = "resolving_apps" | "veil_lookups" | "os_resolvers" | "ipv6" | "proxy_variables" | "browsers" | "udp";

export type LeakItem = { 
/**
 * What it is about: `curl`, `192.168.1.1 (wlan0)`, `~/.bashrc: http_proxy`.
 */
subject: string, detail: string, verdict: Verdict, };

export type LeakCheck = { id: LeakCheckId, title: string, verdict: Verdict, 
/**
 * What the check read or asked.
 */
looked_at: string, 
/**
 * One or two sentences: what it found.
 */
found: string, why: string, 
/**
 * What to do; empty when there is nothing to do.
 */
todo: string, items: Array<LeakItem>, };

export type LeakRoute = "direct" | "upstream" | "unknown";

export type LeakReport = { checked_unix_ms: number, 
/**
 * How long the checks took.
 */
took_ms: number, route: LeakRoute, 
/**
 * The worst verdict of all checks.
 */
verdict: Verdict, checks: Array<LeakCheck>, };

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
detail: string | null, 
/**
 * The OS setting no longer reads back as Veil's (another program, a
 * network change): Veil asks before changing it back.
 */
drift: SystemProxyDrift | null, };

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

export type UpstreamEntry = { name: string, url: string, username: string | null, has_password: boolean, weight: number, 
/**
 * Its exit addresses, once checked through it ([`check_exit_ip`]).
 */
exit: ExitIp | null, };

export type UpstreamInput = { 
/**
 * The upstream edited (by its name before the change), or `None` to add.
 */
original_name: string | null, name: string, url: string, password: string | null, weight: number, };

export type UpstreamTest = { name: string, latency_ms: number | null, error: string | null, };

export type RefusedLine = { 
/**
 * 1-based line number in the imported text.
 */
line: number, 
/**
 * The line with any password replaced by `***`.
 */
text: string, reason: string, };

export type AddedUpstream = { line: number, name: string, 
/**
 * The URL as stored, without a password.
 */
url: string, 
/**
 * Its password went to the OS keyring.
 */
password_stored: boolean, };

export type ImportSummary = { added: Array<AddedUpstream>, refused: Array<RefusedLine>, };

export type ImportResult = { summary: ImportSummary, upstreams: Array<UpstreamEntry>, };

export type Settings = { listen: string, bypass: Array<string>, cache_enabled: boolean, cache_memory_mb: number, cache_disk_mb: number, 
/**
 * Serve what was fetched through one route to requests taking another.
 */
cache_share_across_routes: boolean, 
/**
 * Start at login (the app's autostart entry, not in `config.toml`).
 */
autostart: boolean, 
/**
 * `http(s)` URLs only, asked through Veil.
 */
ipcheck_endpoints: Array<string>, 
/**
 * "Check my real IP directly" (other endpoints, after a random pause).
 */
ipcheck_direct: boolean, history_retention_days: number, theme: Theme, 
/**
 * How apps reach Veil when the system proxy is on: a fixed proxy, or
 * Veil's PAC file (fail-closed or fail-open).
 */
apps_reach: AppsReach, language: Language, 
/**
 * Closing the window keeps Veil running in the tray.
 */
keep_running: boolean, };

export type SettingsSaved = { settings: Settings, 
/**
 * What changed that the user should know, e.g. the new listener.
 */
notice: string | null, };
