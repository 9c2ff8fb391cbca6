// One typed function per command of docs/APP-API.md. Every command rejects with
// an AppError; anything else that goes wrong on the way (no backend, a panic
// message as a plain string) is turned into one too, so callers see one shape.
import { invoke } from "@tauri-apps/api/core";
import type {
  AppError,
  AppStatus,
  CacheStats,
  CoverageReport,
  DriftChoice,
  ExitIp,
  HistoryRange,
  HistoryReport,
  ImportResult,
  IpReport,
  LeakReport,
  Selection,
  Settings,
  SettingRow,
  SettingsSaved,
  Strategy,
  SysProxyState,
  UpstreamEntry,
  UpstreamInput,
  UpstreamTest,
} from "../bindings";
import { t } from "../i18n/index.svelte";

const KINDS: readonly AppError["kind"][] = [
  "invalid",
  "config",
  "keyring",
  "sysproxy",
  "engine",
  "io",
  "network",
];

export function isAppError(e: unknown): e is AppError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as AppError).message === "string" &&
    KINDS.includes((e as AppError).kind)
  );
}

/** Said when there is no Tauri IPC at all (a plain browser tab). */
function noBackend(): AppError {
  return { kind: "engine", message: t("error.no_backend") };
}

/** Whether Tauri's IPC is present (it is not in a plain browser tab). */
export function hasBackend(): boolean {
  const internals = (globalThis as { __TAURI_INTERNALS__?: { invoke?: unknown } }).__TAURI_INTERNALS__;
  return typeof internals?.invoke === "function";
}

/** Whatever a rejected command gave us, as an AppError with a readable message. */
export function toAppError(e: unknown): AppError {
  if (isAppError(e)) return e;
  if (typeof e === "string" && e.trim() !== "") return { kind: "engine", message: e };
  if (!hasBackend()) return noBackend();
  if (e instanceof Error && e.message) return { kind: "engine", message: e.message };
  return { kind: "engine", message: t("error.unknown") };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  if (!hasBackend()) throw noBackend();
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toAppError(e);
  }
}

export const getStatus = () => call<AppStatus>("get_status");
export const dismissAlerts = () => call<AppStatus>("dismiss_alerts");
export const setSystemProxy = (on: boolean) => call<SysProxyState>("set_system_proxy", { on });
export const systemProxySettings = () => call<SettingRow[]>("system_proxy_settings");
export const answerDrift = (choice: DriftChoice) => call<AppStatus>("answer_drift", { choice });
export const setSelection = (selection: Selection) => call<AppStatus>("set_selection", { selection });
export const setStrategy = (strategy: Strategy) => call<AppStatus>("set_strategy", { strategy });
export const listUpstreams = () => call<UpstreamEntry[]>("list_upstreams");
export const saveUpstream = (upstream: UpstreamInput) => call<UpstreamEntry[]>("save_upstream", { upstream });
export const removeUpstream = (name: string) => call<UpstreamEntry[]>("remove_upstream", { name });
export const testUpstream = (name: string) => call<UpstreamTest>("test_upstream", { name });
export const importUpstreams = (text: string) => call<ImportResult>("import_upstreams", { text });
export const cacheClear = () => call<CacheStats>("cache_clear");
export const getSettings = () => call<Settings>("get_settings");
export const getFallbackDirect = () => call<boolean>("get_fallback_direct");
export const setFallbackDirect = (allowed: boolean) => call<boolean>("set_fallback_direct", { allowed });
export const saveSettings = (settings: Settings) => call<SettingsSaved>("save_settings", { settings });
export const checkIp = () => call<IpReport>("check_ip");
export const scanCoverage = () => call<CoverageReport>("scan_coverage");
export const checkLeaks = () => call<LeakReport>("check_leaks");
export const getHistory = (range: HistoryRange) => call<HistoryReport>("get_history", { range });
export const checkExitIp = (name: string) => call<ExitIp>("check_exit_ip", { name });
export const closeConnections = (ids: number[] | null) => call<number>("close_connections", { ids });
export const answerClose = (keepRunning: boolean) => call<null>("answer_close", { keepRunning });
export const quitApp = () => call<null>("quit_app");
export const exportHistoryCsv = (range: HistoryRange) => call<string>("export_history_csv", { range });
