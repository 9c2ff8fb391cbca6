import { afterEach, describe, expect, it } from "vitest";
import { render, screen, waitFor, within } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Learn from "./Learn.svelte";
import { resetAppState, setStatus } from "../lib/state.svelte";
import { coverage, handler, leaks, stats, status } from "../test/fixtures";
import type { UpstreamReport } from "../bindings";

afterEach(() => resetAppState());

const report = (name: string): UpstreamReport => ({
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
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks() }, []));
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
      "How Veil picks an upstream",
    ]);
  });

  it("in direct mode says names are resolved on this computer, not by an upstream", async () => {
    setStatus(status({ selection: { kind: "direct" }, stats: stats({ mode: "direct", dns: { hits: 3, misses: 5, entries: 4, proxied_lookups: 0 } }) }));
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks({ route: "direct" }) }, []));
    render(Learn);
    const route = screen.getByTestId("learn-dns-route");
    expect(route).toHaveTextContent(
      "Veil is in direct mode: it looks names up on this computer, through the same resolvers as your other apps, and connects from here. Your network's resolver sees every name (5 lookups so far).",
    );
    expect(route).not.toHaveTextContent("which resolves the names");
    expect(screen.queryByTestId("learn-strategy")).toBeNull();
    expect(screen.getByTestId("learn-strategies-none")).toHaveTextContent("No upstreams are configured");
  });

  it("through an upstream says the upstream resolves names and shows Veil's own lookup count", async () => {
    setStatus(
      status({
        selection: { kind: "one", name: "home" },
        stats: stats({ mode: "proxy", upstreams: [report("home")], dns: { hits: 0, misses: 0, entries: 0, proxied_lookups: 0 } }),
      }),
    );
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks() }, []));
    render(Learn);
    expect(screen.getByTestId("learn-dns-route")).toHaveTextContent(
      "Traffic through Veil goes to the upstream home, which resolves the names: Veil passes the host name on (SOCKS5 with a host name, or HTTP CONNECT host) instead of looking it up here. Veil's own lookups for that traffic so far: 0. Names in the bypass list or a \"direct\" rule are still looked up and reached from this computer.",
    );
  });

  it("puts each leak finding beside the paragraph it concerns", async () => {
    setStatus(status({ stats: stats({ mode: "proxy", upstreams: [report("a")] }) }));
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks() }, []));
    render(Learn);
    const dns = await screen.findByTestId("learn-dns-findings");
    expect(within(dns).getAllByTestId("leak-check").map((c) => c.dataset.id)).toEqual([
      "resolving_apps",
      "veil_lookups",
      "os_resolvers",
      "browsers",
    ]);
    expect(dns.closest("article")?.querySelector("h2")?.textContent).toBe("DNS leaks");
    expect(dns).toHaveTextContent("curl looked names up itself before using Veil.");
    expect(dns).toHaveTextContent("0 local lookups for 40 connections through upstreams.");
    const vpn = screen.getByTestId("learn-vpn-findings");
    expect(vpn.closest("article")?.querySelector("h2")?.textContent).toBe("A proxy is not a VPN");
    expect(within(vpn).getAllByTestId("leak-check").map((c) => c.dataset.id)).toEqual(["udp", "ipv6", "proxy_variables"]);
    expect(vpn).toHaveTextContent("chrome has UDP sockets that Veil cannot carry.");
  });

  it("explains the strategies with the live pool", async () => {
    const ups = [
      { ...report("a"), open_connections: 3, latency_ms: 80 },
      { ...report("b"), open_connections: 1, latency_ms: 20 },
      { ...report("c"), healthy: false, latency_ms: 5 },
    ];
    setStatus(status({ selection: { kind: "pool" }, stats: stats({ mode: "proxy", strategy: "leastconn", upstreams: ups }) }));
    mockIPC(handler({ scan_coverage: coverage(), check_leaks: leaks() }, []));
    render(Learn);
    const items = screen.getAllByTestId("learn-strategy");
    const text = (s: string) => items.find((i) => i.dataset.strategy === s)?.textContent ?? "";
    expect(text("roundrobin")).toContain("With your pool: takes turns among a and b (c is down and skipped).");
    expect(text("leastconn")).toContain("least connections (in use)");
    expect(text("leastconn")).toContain("the next connection would go to b (1 open now)");
    expect(text("first")).toContain("a carries everything; b is the fallback");
    expect(text("fastest")).toContain("With your pool: b (20 ms)");
    expect(text("fastest")).not.toContain("(in use)");
  });
});
