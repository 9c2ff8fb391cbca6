import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { emit } from "@tauri-apps/api/event";
import { mockIPC } from "@tauri-apps/api/mocks";
import App from "../App.svelte";
import { resetAppState } from "../lib/state.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { handler, settings, stats, status, sysproxy, type Calls } from "../test/fixtures";
import type { IpReport } from "../bindings";

const ip: IpReport = {
  direct: { ip: "203.0.113.5", endpoint: "https://api.ipify.org", elapsed_ms: 80, failures: [] },
  via_proxy: { ip: "198.51.100.7", endpoint: "https://api.ipify.org", elapsed_ms: 140, failures: [] },
  verdict: "masked",
  reason: "Sites see 198.51.100.7 through Veil, not your own 203.0.113.5.",
  checked_unix_ms: 1_700_000_000_000,
  direct_off: false,
};

afterEach(() => {
  resetAppState();
  clearErrors();
});

function switchEl(): HTMLElement {
  return screen.getByRole("switch", { name: "System proxy" });
}

describe("Overview", () => {
  it("says when it drives the engine of `veil run` instead of its own", async () => {
    const note =
      "Attached to the Veil engine started by `veil run` (pid 4242). The system proxy, the route, the IP check and the cache work from here.";
    mockIPC(
      handler(
        {
          get_status: status({ attached: { pid: 4242, note, error: null } }),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
        },
        [],
      ),
    );
    render(App);
    const banner = await screen.findByTestId("attached");
    expect(banner.textContent).toContain("started by `veil run` (pid 4242)");
    expect(screen.queryByTestId("attached-error")).toBeNull();
  });

  it("says when the real IP was not checked directly", async () => {
    const exitOnly: IpReport = {
      ...ip,
      direct: { ip: null, endpoint: null, elapsed_ms: 0, failures: [] },
      direct_off: true,
      reason: "through Veil the world sees 198.51.100.7, by way of the upstream; based on the exit IP alone",
    };
    mockIPC(handler({ get_status: status({ ip: exitOnly }), get_settings: settings(), list_upstreams: [], check_ip: exitOnly }, []));
    render(App);
    expect(await screen.findByTestId("ip-direct")).toHaveTextContent("not checked (the direct check is off)");
    expect(screen.getByTestId("ip-reason")).toHaveTextContent("exit IP alone");
  });

  it("shows no attached banner for its own engine", async () => {
    mockIPC(handler({ get_status: status(), get_settings: settings(), list_upstreams: [], check_ip: ip }, []));
    render(App);
    await screen.findByRole("switch", { name: "System proxy" });
    expect(screen.queryByTestId("attached")).toBeNull();
  });

  it("says what Veil changed on its own, and forgets it once dismissed", async () => {
    const calls: Calls = [];
    const alert = {
      at_unix_ms: 1_700_000_000_000,
      what: "Veil is not listening",
      why: "the new listener did not start; the system proxy is off (your own settings are back)",
    };
    mockIPC(
      handler(
        {
          get_status: status({ alerts: [alert] }),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
          dismiss_alerts: status(),
        },
        calls,
      ),
    );
    render(App);
    const box = await screen.findByTestId("alerts");
    expect(box.getAttribute("role")).toBe("alert");
    expect(within(box).getByText("Veil is not listening")).toBeInTheDocument();
    expect(within(box).getByText(/system proxy is off/)).toBeInTheDocument();
    await fireEvent.click(within(box).getByRole("button", { name: "Dismiss" }));
    await waitFor(() => expect(screen.queryByTestId("alerts")).toBeNull());
    expect(calls.some((c) => c.cmd === "dismiss_alerts")).toBe(true);
  });

  it("shows a drift of the OS setting beside the saved one and asks before re-applying", async () => {
    const calls: Calls = [];
    const drift = {
      cause: "other_program" as const,
      backend: "gnome",
      detail: "org.gnome.system.proxy mode reads back as 'none', expected 'manual'",
      now: "off (direct)",
      since_unix_ms: 1_700_000_000_000,
    };
    mockIPC(
      handler(
        {
          get_status: status({ system_proxy: sysproxy({ on: true, drift }) }),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
          system_proxy_settings: [
            { backend: "gnome", field: "mode", now: "off", saved: "manual" },
            { backend: "gnome", field: "http", now: "-", saved: "127.0.0.9:3128" },
            { backend: "gnome", field: "PAC", now: "-", saved: "-" },
          ],
          answer_drift: status({ system_proxy: sysproxy({ on: true }) }),
        },
        calls,
      ),
    );
    render(App);
    const box = await screen.findByTestId("sysproxy-drift");
    expect(within(box).getByText("Another program changed your proxy setting")).toBeInTheDocument();
    expect(screen.getByTestId("sysproxy-drift-badge")).toHaveTextContent("Changed outside Veil");
    const compare = await screen.findByTestId("sysproxy-compare");
    await waitFor(() => expect(within(compare).getByText("127.0.0.9:3128")).toBeInTheDocument());
    expect(within(compare).queryByText("gnome PAC")).toBeNull();
    expect(calls.some((c) => c.cmd === "answer_drift")).toBe(false);
    await fireEvent.click(within(box).getByRole("button", { name: "Re-apply" }));
    await waitFor(() => expect(screen.queryByTestId("sysproxy-drift")).toBeNull());
    const answer = calls.find((c) => c.cmd === "answer_drift");
    expect(answer?.args).toMatchObject({ choice: "reapply" });
  });

  it("turns the system proxy on and shows the engine's answer", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          get_status: status(),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
          set_system_proxy: (a) => sysproxy({ on: a.on as boolean }),
        },
        calls,
      ),
    );
    render(App);
    const sw = switchEl();
    expect(sw.id).toBe("sysproxy-switch");
    await waitFor(() => expect(sw).toBeEnabled());
    expect(sw.getAttribute("aria-checked")).toBe("false");

    await fireEvent.click(sw);
    await waitFor(() => expect(sw.getAttribute("aria-checked")).toBe("true"));
    expect(calls.filter((c) => c.cmd === "set_system_proxy").map((c) => c.args)).toEqual([{ on: true }]);
    expect(screen.getByText(/Apps that follow the system proxy setting now go through Veil at/)).toHaveTextContent(
      "127.0.0.1:7890",
    );
    expect(screen.getByTestId("status-dot").getAttribute("aria-label")).toBe("System proxy on");
  });

  it("keeps the switch where the engine says when it refuses, and shows why", async () => {
    mockIPC(
      handler(
        {
          get_status: status(),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
          set_system_proxy: () => {
            throw { kind: "sysproxy", message: "GNOME refused the proxy setting: gsettings is missing. Install it and try again." };
          },
        },
        [],
      ),
    );
    render(App);
    const sw = switchEl();
    await waitFor(() => expect(sw).toBeEnabled());
    await fireEvent.click(sw);

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("GNOME refused the proxy setting: gsettings is missing. Install it and try again.");
    expect(sw.getAttribute("aria-checked")).toBe("false");

    await fireEvent.click(within(alert).getByRole("button", { name: /dismiss/i }));
    await waitFor(() => expect(screen.queryByRole("alert")).toBeNull());
  });

  it("says why when the desktop is not supported, and points to veil env", async () => {
    mockIPC(
      handler(
        {
          get_status: status({ system_proxy: sysproxy({ supported: false, backends: [], detail: "no GNOME, KDE found" }) }),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
        },
        [],
      ),
    );
    render(App);
    const note = await screen.findByTestId("sysproxy-unsupported");
    expect(note).toHaveTextContent("no GNOME, KDE found");
    expect(screen.getByText(/veil env/)).toBeInTheDocument();
    expect(switchEl()).toBeDisabled();
  });

  it("shows the masked IP from the status, the counters, and follows the stats event", async () => {
    mockIPC(handler({ get_status: status({ ip }), get_settings: settings(),
          list_upstreams: [] }, []), { shouldMockEvents: true });
    render(App);
    await waitFor(() => expect(screen.getByTestId("ip-verdict")).toHaveTextContent("Masked"));
    expect(screen.getByTestId("ip-direct")).toHaveTextContent("203.0.113.5");
    expect(screen.getByTestId("ip-proxy")).toHaveTextContent("198.51.100.7");
    expect(screen.getByTestId("ip-verdict")).toHaveClass("good");
    expect(screen.getByTestId("bytes-down")).toHaveTextContent("1.2 MB");
    expect(screen.getByTestId("bytes-up")).toHaveTextContent("2.5 KB");
    expect(screen.getByTestId("connections-open")).toHaveTextContent("2");
    expect(screen.getByTestId("dns-hit-ratio")).toHaveTextContent("75%");
    expect(screen.getByTestId("cache-hit-ratio")).toHaveTextContent("50%");

    await emit("veil://stats", stats({ bytes_down: 3_400_000_000, connections_open: 7 }));
    await waitFor(() => expect(screen.getByTestId("bytes-down")).toHaveTextContent("3.4 GB"));
    expect(screen.getByTestId("connections-open")).toHaveTextContent("7");

    await emit("veil://ip", { ...ip, verdict: "not_masked", reason: "Both paths show 203.0.113.5." });
    await waitFor(() => expect(screen.getByTestId("ip-verdict")).toHaveTextContent("NOT masked"));
    expect(screen.getByTestId("ip-verdict")).toHaveClass("warn");
    expect(screen.getByTestId("ip-reason")).toHaveTextContent("Both paths show 203.0.113.5.");
  });

  it("changes the route with set_selection", async () => {
    const calls: Calls = [];
    const withUpstreams = stats({
      upstreams: [
        {
          name: "vps",
          url: "socks5://vps:1080",
          healthy: true,
          open_connections: 0,
          total_connections: 0,
          bytes_up: 0,
          bytes_down: 0,
          latency_ms: 30,
          last_error: null,
          weight: 1,
        },
      ],
    });
    mockIPC(
      handler(
        {
          get_status: status({ stats: withUpstreams }),
          get_settings: settings(),
          list_upstreams: [],
          check_ip: ip,
          set_selection: (a) => status({ stats: withUpstreams, selection: a.selection as never }),
        },
        calls,
      ),
    );
    render(App);
    const select = (await screen.findByLabelText("Route new connections")) as HTMLSelectElement;
    await waitFor(() => expect(select).toBeEnabled());
    expect(select.id).toBe("selection");
    await fireEvent.change(select, { target: { value: "one:vps" } });
    await waitFor(() => expect(screen.getByTestId("selection-summary")).toHaveTextContent("only the upstream vps"));
    expect(calls.find((c) => c.cmd === "set_selection")?.args).toEqual({ selection: { kind: "one", name: "vps" } });
  });
});
