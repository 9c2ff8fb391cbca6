// What the window knows about the engine: the status from `get_status`, kept
// fresh by the events. Replaced whole on each update ($state.raw), since the
// stats snapshot arrives every second.
import type { AppStatus, IpReport, StatsSnapshot, SysProxyState, Theme } from "../bindings";
import * as api from "./api";
import { onCloseAsked, onEngine, onIp, onStats, onStatus } from "./events";
import { reportError } from "./errors.svelte";

class AppState {
  status = $state.raw<AppStatus | null>(null);
  stats = $state.raw<StatsSnapshot | null>(null);
  ip = $state.raw<IpReport | null>(null);
  ipChecking = $state(false);
  /** true until the first get_status answered or failed */
  loading = $state(true);
  /** get_status failed: there is no engine to talk to */
  unreachable = $state(false);
  theme = $state<Theme>("system");
  /** the engine said it is shutting down (veil://engine) */
  shuttingDown = $state(false);
  /** the OS prefers dark (followed while the theme setting is "system") */
  systemDark = $state(false);
  /** the window was closed without a tray to come back from: ask */
  closeAsked = $state(false);
}

export const app = new AppState();

export function resetAppState(): void {
  app.status = null;
  app.stats = null;
  app.ip = null;
  app.ipChecking = false;
  app.loading = true;
  app.unreachable = false;
  app.theme = "system";
  app.shuttingDown = false;
  app.closeAsked = false;
}

export function setStatus(s: AppStatus): void {
  app.status = s;
  app.stats = s.stats;
  // The app checks the IP itself at start and after route changes; its last
  // answer comes with the status. A status can arrive after a newer
  // `veil://ip` event (a command's reply), so the newest check wins.
  if (s.ip && (!app.ip || s.ip.checked_unix_ms > app.ip.checked_unix_ms)) app.ip = s.ip;
}

export function setSysProxy(sp: SysProxyState): void {
  if (app.status) app.status = { ...app.status, system_proxy: sp };
}

export async function loadStatus(): Promise<void> {
  try {
    setStatus(await api.getStatus());
    app.unreachable = false;
  } catch (e) {
    app.unreachable = true;
    reportError(e);
  } finally {
    app.loading = false;
  }
}

export async function checkIpNow(): Promise<void> {
  if (app.ipChecking) return;
  app.ipChecking = true;
  try {
    app.ip = await api.checkIp();
  } catch (e) {
    reportError(e);
  } finally {
    app.ipChecking = false;
  }
}

/** Subscribes to the events; resolves to one function that unsubscribes all. */
export async function subscribe(): Promise<() => void> {
  const results = await Promise.allSettled([
    onStats((s) => {
      // Nothing is redrawn while the window is minimised or hidden; the
      // next tick after it shows again brings everything up to date.
      if (typeof document !== "undefined" && document.hidden) return;
      app.stats = s;
    }),
    onCloseAsked(() => {
      app.closeAsked = true;
    }),
    onStatus((s) => setStatus(s)),
    onIp((r) => {
      // A slow check of an older route must not replace a newer answer.
      if (!app.ip || r.checked_unix_ms >= app.ip.checked_unix_ms) app.ip = r;
    }),
    onEngine((e) => {
      if (e.kind === "shutting_down") app.shuttingDown = true;
    }),
  ]);
  const offs: (() => void)[] = [];
  for (const r of results) {
    if (r.status === "fulfilled") offs.push(r.value);
  }
  // One listen failing means the others fail too (no backend); say it once.
  const failed = results.find((r) => r.status === "rejected");
  if (failed && failed.status === "rejected" && !app.unreachable) reportError(failed.reason);
  // Unlistening is async and fails when the IPC is already gone (window closing).
  return () => offs.forEach((off) => void Promise.resolve().then(off).catch(() => {}));
}

/** Applies the theme setting: data-theme on <html>, which the CSS follows. */
export function applyTheme(theme: Theme): void {
  app.theme = theme;
  document.documentElement.setAttribute("data-theme", theme);
}

/** light or dark, after following the system when the setting says so. */
export function resolvedTheme(theme: Theme): "light" | "dark" {
  if (theme !== "system") return theme;
  return app.systemDark ? "dark" : "light";
}

/** Follows the OS colour scheme; returns the function that stops following. */
export function followSystemScheme(): () => void {
  if (typeof window.matchMedia !== "function") return () => {};
  const mq = window.matchMedia("(prefers-color-scheme: dark)");
  app.systemDark = mq.matches;
  const changed = (e: MediaQueryListEvent) => {
    app.systemDark = e.matches;
  };
  mq.addEventListener?.("change", changed);
  return () => mq.removeEventListener?.("change", changed);
}
