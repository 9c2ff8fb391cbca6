import { afterEach, describe, expect, it } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Learn from "./Learn.svelte";
import { resetAppState, setStatus } from "../lib/state.svelte";
import { coverage, handler, stats, status } from "../test/fixtures";

afterEach(() => resetAppState());

const report = (name: string) => ({
  name,
  url: `socks5://${name}:1080`,
  healthy: true,
  open_connections: 0,
  total_connections: 0,
  bytes_up: 0,
  bytes_down: 0,
  latency_ms: 20,
  last_error: null,
  weight: 1,
});

describe("Learn", () => {
  it("ties the explainer to this machine's coverage and upstreams", async () => {
    setStatus(status({ selection: { kind: "pool" }, stats: stats({ upstreams: [report("a"), report("b"), report("c")] }) }));
    mockIPC(handler({ scan_coverage: coverage() }, []));
    render(Learn);
    await waitFor(() =>
      expect(screen.getByTestId("learn-coverage")).toHaveTextContent(
        "On this computer: firefox and curl are covered by Veil; 2 apps are not (spotify and chrome), and a VPN would capture them. A VPN would capture 4 apps in all.",
      ),
    );
    expect(screen.getByTestId("learn-rotation")).toHaveTextContent(
      "3 upstreams configured, strategy round robin, route: all upstreams, round robin.",
    );
    expect(screen.getByTestId("learn-listen")).toHaveTextContent("Veil listens on 127.0.0.1:7890, the loopback address");
    expect(screen.getAllByRole("heading", { level: 2 }).map((h) => h.textContent)).toEqual([
      "A proxy is not a VPN",
      "Forward and reverse proxies",
      "Why Veil is never an open proxy",
      "DNS leaks",
      "What HTTPS hides, and what it does not",
      "Why only plain HTTP is cached",
      "IP rotation",
    ]);
  });
});
