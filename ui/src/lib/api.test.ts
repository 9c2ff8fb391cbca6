import { describe, expect, it } from "vitest";
import { mockIPC } from "@tauri-apps/api/mocks";
import * as api from "./api";
import { handler, settings, status, sysproxy, type Calls } from "../test/fixtures";

describe("api wrapper", () => {
  it("sends each command by its contract name with its argument shape", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          get_status: status(),
          set_system_proxy: sysproxy({ on: true }),
          set_selection: status(),
          set_strategy: status(),
          list_upstreams: [],
          save_upstream: [],
          remove_upstream: [],
          test_upstream: { name: "a", latency_ms: 10, error: null },
          cache_clear: {},
          get_settings: settings(),
          save_settings: { settings: settings(), notice: null },
          check_ip: {},
          scan_coverage: {},
          get_history: {},
          export_history_csv: "/home/u/Downloads/veil.csv",
        },
        calls,
      ),
    );

    const input = { original_name: null, name: "a", url: "socks5://h:1080", password: "pw", weight: 2 };
    await api.getStatus();
    await api.setSystemProxy(true);
    await api.setSelection({ kind: "one", name: "a" });
    await api.setStrategy("fastest");
    await api.listUpstreams();
    await api.saveUpstream(input);
    await api.removeUpstream("a");
    await api.testUpstream("a");
    await api.cacheClear();
    await api.getSettings();
    await api.saveSettings(settings({ theme: "dark" }));
    await api.checkIp();
    await api.scanCoverage();
    await api.getHistory("day");
    expect(await api.exportHistoryCsv("week")).toBe("/home/u/Downloads/veil.csv");

    const sent = calls.map((c) => [c.cmd, c.args]);
    expect(sent).toEqual([
      ["get_status", {}],
      ["set_system_proxy", { on: true }],
      ["set_selection", { selection: { kind: "one", name: "a" } }],
      ["set_strategy", { strategy: "fastest" }],
      ["list_upstreams", {}],
      ["save_upstream", { upstream: input }],
      ["remove_upstream", { name: "a" }],
      ["test_upstream", { name: "a" }],
      ["cache_clear", {}],
      ["get_settings", {}],
      ["save_settings", { settings: settings({ theme: "dark" }) }],
      ["check_ip", {}],
      ["scan_coverage", {}],
      ["get_history", { range: "day" }],
      ["export_history_csv", { range: "week" }],
    ]);
  });

  it("passes an AppError through unchanged", async () => {
    mockIPC(() => {
      throw { kind: "keyring", message: "The OS keyring is locked. Unlock it and try again." };
    });
    await expect(api.listUpstreams()).rejects.toEqual({
      kind: "keyring",
      message: "The OS keyring is locked. Unlock it and try again.",
    });
  });

  it("turns a plain string rejection into an AppError", async () => {
    mockIPC(() => {
      throw "command get_status not found";
    });
    await expect(api.getStatus()).rejects.toEqual({ kind: "engine", message: "command get_status not found" });
  });

  it("explains when there is no Tauri backend at all", async () => {
    // no mockIPC: window.__TAURI_INTERNALS__ is missing, as in a plain browser
    const e = await api.getStatus().catch((x: unknown) => x);
    expect(api.isAppError(e)).toBe(true);
    expect((e as { message: string }).message).toMatch(/outside the Veil app/);
  });
});
