// Subscriptions to the app's events (docs/APP-API.md). Each helper resolves to
// an unsubscribe function.
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type { AppStatus, IpReport, StatsSnapshot } from "../bindings";

export const EVENT_STATS = "veil://stats";
export const EVENT_ENGINE = "veil://engine";
export const EVENT_STATUS = "veil://status";
export const EVENT_IP = "veil://ip";
/** The window was closed where the desktop shows no tray icon. */
export const EVENT_CLOSE_ASKED = "veil://close-asked";

/** The payload of `veil://engine`; only `kind` is relied on here. */
export interface EngineEventPayload {
  kind:
    | "connection_opened"
    | "connection_routed"
    | "connection_closed"
    | "upstream_up"
    | "upstream_down"
    | "shutting_down";
  [field: string]: unknown;
}

function on<T>(event: string, handler: (payload: T) => void): Promise<UnlistenFn> {
  return listen<T>(event, (e) => handler(e.payload));
}

export const onStats = (h: (s: StatsSnapshot) => void) => on<StatsSnapshot>(EVENT_STATS, h);
export const onEngine = (h: (e: EngineEventPayload) => void) => on<EngineEventPayload>(EVENT_ENGINE, h);
export const onStatus = (h: (s: AppStatus) => void) => on<AppStatus>(EVENT_STATUS, h);
export const onIp = (h: (r: IpReport) => void) => on<IpReport>(EVENT_IP, h);
export const onCloseAsked = (h: () => void) => on<null>(EVENT_CLOSE_ASKED, () => h());
