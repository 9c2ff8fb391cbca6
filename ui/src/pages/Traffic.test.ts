import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Traffic from "./Traffic.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { app, resetAppState } from "../lib/state.svelte";
import { handler, stats, type Calls } from "../test/fixtures";
import type { HistoryReport } from "../bindings";

afterEach(() => {
  resetAppState();
  clearErrors();
});

const history = (range: "hour" | "day" | "week"): HistoryReport => ({
  range,
  bucket_s: 60,
  series: [{ unix_ms: 1_700_000_000_000, bytes_up: 600, bytes_down: 6000 }],
  apps: [{ key: "firefox", bytes_up: 600, bytes_down: 6000, spark: [1, 5, 2] }],
  hosts: [{ key: "example.com", bytes_up: 600, bytes_down: 6000, spark: [0, 3] }],
});

describe("Traffic", () => {
  it("lists open connections, apps and hosts, and exports CSV", async () => {
    const now = Date.now();
    app.stats = stats({
      apps: [{ app: "firefox", bytes_up: 600, bytes_down: 6000, connections: 1, resolved_locally: 0, resolved_locally_targets: [] }],
      hosts: [{ host: "example.com", bytes_up: 600, bytes_down: 6000, connections: 1, requests: 4 }],
      connections: [
        {
          id: 1,
          client: "127.0.0.1:50000",
          protocol: "CONNECT",
          target: "example.com:443",
          opened_unix_ms: now - 125_000,
          bytes_up: 600,
          bytes_down: 6000,
          upstream: "vps",
          app: { pid: 100, name: "firefox", exe: null },
        },
        {
          id: 2,
          client: "127.0.0.1:50001",
          protocol: "HTTP",
          target: "neverssl.com:80",
          opened_unix_ms: now - 5_000,
          bytes_up: 10,
          bytes_down: 20,
          upstream: null,
          app: null,
        },
      ],
    });
    const calls: Calls = [];
    mockIPC(
      handler(
        { get_history: (a) => history(a.range as "hour"), export_history_csv: "/home/u/Downloads/veil-history-day.csv" },
        calls,
      ),
    );
    render(Traffic);
    const rows = screen.getAllByTestId("connection-row");
    expect(rows).toHaveLength(2);
    expect(rows[0]).toHaveTextContent("firefox");
    expect(rows[0]).toHaveTextContent("vps");
    expect(rows[0]).toHaveTextContent("2 min 5 s");
    expect(rows[1]).toHaveTextContent("unknown");
    expect(rows[1]).toHaveTextContent("direct");
    expect(within(screen.getByTestId("app-row")).getByRole("img", { name: "Trend of firefox" })).toBeInTheDocument();

    await waitFor(() => expect(calls.find((c) => c.cmd === "get_history")?.args).toEqual({ range: "hour" }));
    await fireEvent.click(screen.getByRole("button", { name: "Day" }));
    await waitFor(() => expect(calls.filter((c) => c.cmd === "get_history").at(-1)?.args).toEqual({ range: "day" }));
    expect(screen.getByRole("button", { name: "Day" }).getAttribute("aria-pressed")).toBe("true");

    await fireEvent.click(screen.getByRole("button", { name: "Export CSV" }));
    expect(await screen.findByTestId("export-path")).toHaveTextContent("/home/u/Downloads/veil-history-day.csv");
    expect(calls.find((c) => c.cmd === "export_history_csv")?.args).toEqual({ range: "day" });
  });
});
