import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Coverage from "./Coverage.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { coverage, handler, leaks, type Calls } from "../test/fixtures";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
});
afterEach(() => {
  vi.useRealTimers();
  clearErrors();
});

describe("Coverage", () => {
  it("shows the totals sentence and one row per app with its class", async () => {
    mockIPC(handler({ scan_coverage: coverage() }, []));
    render(Coverage);
    expect(await screen.findByTestId("coverage-totals")).toHaveTextContent(
      "2 apps covered, 1 bypassing, 1 using UDP; a VPN would capture all 4",
    );
    const rows = screen.getAllByTestId("coverage-app");
    expect(rows.map((r) => r.dataset.class)).toEqual(["bypassing", "udp", "through_veil", "through_veil", "local_only"]);
    const spotify = rows[0];
    expect(spotify).toHaveTextContent("spotify");
    expect(spotify).toHaveTextContent("Bypassing");
    expect(spotify).toHaveTextContent("Ignores the system proxy.");
    expect(spotify).toHaveTextContent("Set the proxy in its own settings.");
    expect(spotify).toHaveTextContent("35.186.224.25:443");
    expect(spotify).toHaveTextContent("✓ would capture");
    expect(rows[4]).toHaveTextContent("— local only");
  });

  it("filters by class", async () => {
    mockIPC(handler({ scan_coverage: coverage() }, []));
    render(Coverage);
    await screen.findByTestId("coverage-totals");
    await fireEvent.change(screen.getByLabelText("Show"), { target: { value: "through_veil" } });
    const rows = screen.getAllByTestId("coverage-app");
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.dataset.class === "through_veil")).toBe(true);
  });

  it("rescans every 5 seconds and stops when the page goes away", async () => {
    const calls: Calls = [];
    mockIPC(handler({ scan_coverage: coverage() }, calls));
    const { unmount } = render(Coverage);
    await screen.findByTestId("coverage-totals");
    const scans = () => calls.filter((c) => c.cmd === "scan_coverage").length;
    expect(scans()).toBe(1);
    await vi.advanceTimersByTimeAsync(5000);
    await waitFor(() => expect(scans()).toBe(2));
    unmount();
    await vi.advanceTimersByTimeAsync(15000);
    expect(scans()).toBe(2);
  });

  it("has a Leaks section with each check's verdict, finding, items and what to do", async () => {
    const calls: Calls = [];
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks() }, calls));
    render(Coverage);
    expect(await screen.findByTestId("leaks-summary")).toHaveTextContent("3 warnings, 1 unknown, 3 passed.");
    const checks = screen.getAllByTestId("leak-check");
    expect(checks.map((c) => c.dataset.verdict)).toEqual(["warn", "warn", "warn", "unknown", "pass", "pass", "pass"]);
    const apps = checks[0];
    expect(apps).toHaveTextContent("Apps that look names up themselves");
    expect(apps).toHaveTextContent("curl looked names up itself before using Veil.");
    expect(apps).toHaveTextContent("curl: 2 requests to an address (93.184.216.34:443)");
    expect(apps).toHaveTextContent("What to do: curl looked these names up itself before using Veil: use --socks5-hostname.");
    expect(apps).toHaveTextContent("Why it matters:");
    expect(apps).toHaveTextContent("Looked at: The targets apps gave Veil since it started.");
    expect(checks[1]).toHaveTextContent("nothing listens on 127.0.0.1:7897");
    await fireEvent.click(screen.getByRole("button", { name: "Check again" }));
    await waitFor(() => expect(calls.filter((c) => c.cmd === "check_leaks")).toHaveLength(2));
  });

  it("says in place when the leak checks cannot run", async () => {
    mockIPC(handler({ scan_coverage: coverage() }, []));
    render(Coverage);
    expect(await screen.findByTestId("leaks-error")).toHaveTextContent("The leak checks did not run: no mock for check_leaks");
  });
});
