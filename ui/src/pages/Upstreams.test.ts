import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Upstreams from "./Upstreams.svelte";
import ErrorBanner from "../components/ErrorBanner.svelte";
import { resetAppState, setStatus } from "../lib/state.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { handler, stats, status, upstream, type Calls } from "../test/fixtures";
import type { UpstreamEntry, UpstreamInput } from "../bindings";

afterEach(() => {
  resetAppState();
  clearErrors();
});

function input(id: string): HTMLInputElement {
  const el = document.getElementById(id);
  if (!(el instanceof HTMLInputElement)) throw new Error(`no input #${id}`);
  return el;
}

async function fill(name: string, url: string, password: string) {
  await fireEvent.input(input("upstream-name"), { target: { value: name } });
  await fireEvent.input(input("upstream-url"), { target: { value: url } });
  await fireEvent.input(input("upstream-password"), { target: { value: password } });
}

describe("Upstreams", () => {
  it("says what to do when there are none", async () => {
    mockIPC(handler({ list_upstreams: [] }, []));
    render(Upstreams);
    expect(await screen.findByTestId("upstreams-empty")).toHaveTextContent(
      "No upstreams yet. Add one to send your traffic out from another IP.",
    );
  });

  it("refuses other URL schemes and sends nothing", async () => {
    const calls: Calls = [];
    mockIPC(handler({ list_upstreams: [] }, calls));
    render(Upstreams);
    await screen.findByTestId("upstreams-empty");
    await fill("vps", "socks4://host:1080", "pw");
    await fireEvent.click(document.getElementById("upstream-save")!);
    expect(await screen.findByTestId("upstream-url-error")).toHaveTextContent(
      "Only http://, https:// and socks5:// upstreams are supported",
    );
    expect(input("upstream-url").getAttribute("aria-invalid")).toBe("true");
    expect(calls.some((c) => c.cmd === "save_upstream")).toBe(false);
  });

  it("adds an upstream with its password and shows the new list", async () => {
    const calls: Calls = [];
    let saved: UpstreamInput | null = null;
    mockIPC(
      handler(
        {
          list_upstreams: [],
          save_upstream: (a): UpstreamEntry[] => {
            saved = a.upstream as UpstreamInput;
            return [upstream({ name: saved.name, url: saved.url })];
          },
        },
        calls,
      ),
    );
    render(Upstreams);
    await screen.findByTestId("upstreams-empty");
    expect(screen.getByText("Stored in your OS keyring, never in a file.")).toBeInTheDocument();
    expect(input("upstream-url").placeholder).toBe("socks5://user@host:1080");
    expect(input("upstream-password").type).toBe("password");

    await fill("vps", "socks5://me@203.0.113.9:1080", "s3cret");
    await fireEvent.click(document.getElementById("upstream-save")!);

    await waitFor(() => expect(screen.getAllByTestId("upstream-row")).toHaveLength(1));
    expect(saved).toEqual({
      original_name: null,
      name: "vps",
      url: "socks5://me@203.0.113.9:1080",
      password: "s3cret",
      weight: 1,
    });
    // the form is empty again, the password gone from the page
    expect(input("upstream-password").value).toBe("");
  });

  it("edits with an empty password meaning keep it", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          list_upstreams: [upstream()],
          save_upstream: (a) => [upstream({ name: (a.upstream as UpstreamInput).name })],
        },
        calls,
      ),
    );
    render(Upstreams);
    const row = await screen.findByTestId("upstream-row");
    await fireEvent.click(within(row).getByRole("button", { name: "Edit" }));
    expect(input("upstream-name").value).toBe("home");
    await fireEvent.input(input("upstream-name"), { target: { value: "home2" } });
    await fireEvent.click(document.getElementById("upstream-save")!);
    await waitFor(() => expect(calls.some((c) => c.cmd === "save_upstream")).toBe(true));
    expect(calls.find((c) => c.cmd === "save_upstream")?.args).toEqual({
      upstream: { original_name: "home", name: "home2", url: "socks5://me@10.0.0.2:1080", password: null, weight: 1 },
    });
  });

  it("shows health, tests a row and removes after confirming", async () => {
    const calls: Calls = [];
    setStatus(
      status({
        stats: stats({
          upstreams: [
            {
              name: "home",
              url: "socks5://me@10.0.0.2:1080",
              healthy: false,
              open_connections: 0,
              total_connections: 3,
              bytes_up: 0,
              bytes_down: 0,
              latency_ms: null,
              last_error: "connection refused",
              weight: 1,
            },
          ],
        }),
      }),
    );
    mockIPC(
      handler(
        {
          list_upstreams: [upstream()],
          test_upstream: { name: "home", latency_ms: null, error: "connection refused by 10.0.0.2:1080" },
          remove_upstream: [],
        },
        calls,
      ),
    );
    render(Upstreams);
    const row = await screen.findByTestId("upstream-row");
    expect(row).toHaveTextContent("Down");
    expect(row).toHaveTextContent("connection refused");

    await fireEvent.click(within(row).getByTestId("upstream-test"));
    expect(await within(row).findByTestId("upstream-test-result")).toHaveTextContent(
      "Failed: connection refused by 10.0.0.2:1080",
    );
    expect(calls.find((c) => c.cmd === "test_upstream")?.args).toEqual({ name: "home" });

    await fireEvent.click(within(row).getByTestId("upstream-remove"));
    expect(calls.some((c) => c.cmd === "remove_upstream")).toBe(false);
    await fireEvent.click(within(row).getByTestId("upstream-remove-confirm"));
    expect(await screen.findByTestId("upstreams-empty")).toBeInTheDocument();
    expect(calls.find((c) => c.cmd === "remove_upstream")?.args).toEqual({ name: "home" });
  });

  it("shows the engine's refusal in the alert", async () => {
    mockIPC(
      handler(
        {
          list_upstreams: [],
          save_upstream: () => {
            throw { kind: "keyring", message: "No OS keyring is running, so the password cannot be stored." };
          },
        },
        [],
      ),
    );
    render(ErrorBanner);
    render(Upstreams);
    await screen.findByTestId("upstreams-empty");
    await fill("vps", "http://203.0.113.9:3128", "pw");
    await fireEvent.click(document.getElementById("upstream-save")!);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "No OS keyring is running, so the password cannot be stored.",
    );
    // what the user typed is kept for another try
    expect(input("upstream-name").value).toBe("vps");
  });

  it("tests all upstreams a few at a time and puts the fastest first, failures after", async () => {
    const calls: Calls = [];
    let running = 0;
    let most = 0;
    const latency: Record<string, number | null> = { slow: 300, fast: 20, dead: null, mid: 90, other: 50 };
    mockIPC(
      handler(
        {
          list_upstreams: Object.keys(latency).map((name) => upstream({ name, url: `http://${name}.example:3128` })),
          test_upstream: async (a) => {
            const name = a.name as string;
            running += 1;
            most = Math.max(most, running);
            await new Promise((r) => setTimeout(r, 5));
            running -= 1;
            const ms = latency[name];
            return { name, latency_ms: ms, error: ms === null ? "connection refused" : null };
          },
        },
        calls,
      ),
    );
    render(Upstreams);
    await screen.findAllByTestId("upstream-row");
    await fireEvent.click(screen.getByTestId("upstream-test-all"));
    await waitFor(() => expect(screen.getAllByTestId("upstream-test-result")).toHaveLength(5));
    await waitFor(() =>
      expect(screen.getAllByTestId("upstream-row").map((r) => r.dataset.name)).toEqual([
        "fast",
        "other",
        "mid",
        "slow",
        "dead",
      ]),
    );
    expect(calls.filter((c) => c.cmd === "test_upstream")).toHaveLength(5);
    expect(most).toBeLessThanOrEqual(4);
    const dead = screen.getAllByTestId("upstream-row")[4];
    expect(dead).toHaveTextContent("Failed: connection refused");
  });

  it("imports a pasted list and says which lines were refused and why", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          list_upstreams: [],
          import_upstreams: {
            summary: {
              added: [{ line: 1, name: "p.example:1080", url: "socks5://me@p.example:1080", password_stored: true }],
              refused: [{ line: 2, text: "ftp://x:21", reason: "expected http://, https:// or socks5://host:port" }],
            },
            upstreams: [upstream({ name: "p.example:1080", url: "socks5://me@p.example:1080" })],
          },
        },
        calls,
      ),
    );
    render(Upstreams);
    await screen.findByTestId("upstreams-empty");
    const list = "socks5://me:pw@p.example:1080\nftp://x:21\n";
    const area = document.getElementById("upstream-import-text") as HTMLTextAreaElement;
    await fireEvent.input(area, { target: { value: list } });
    await fireEvent.click(screen.getByTestId("upstream-import"));
    const result = await screen.findByTestId("upstream-import-result");
    expect(result).toHaveTextContent("Added 1 upstream. 1 line was refused.");
    expect(result).toHaveTextContent("Line 2: ftp://x:21 expected http://, https:// or socks5://host:port");
    expect(calls.find((c) => c.cmd === "import_upstreams")?.args).toEqual({ text: list });
    expect(await screen.findByTestId("upstream-row")).toHaveAttribute("data-name", "p.example:1080");
    expect(area.value).toBe("");
  });
});
