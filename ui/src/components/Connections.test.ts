import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Connections from "./Connections.svelte";
import type { ConnectionInfo } from "../bindings";
import { clearErrors } from "../lib/errors.svelte";
import { handler, type Calls } from "../test/fixtures";

afterEach(() => clearErrors());

const held: ConnectionInfo = {
  id: 7,
  client: "127.0.0.1:50000",
  protocol: "http",
  target: "example.test:80",
  opened_unix_ms: 0,
  bytes_up: 0,
  bytes_down: 0,
  upstream: null,
  app: null,
};

describe("Connections", () => {
  it("keeps saying what was closed once the last connection is gone from the list", async () => {
    const calls: Calls = [];
    mockIPC(handler({ close_connections: (a) => (a.ids as number[]).length }, calls));
    const view = render(Connections, { connections: [held], now: 1000 });
    await fireEvent.click(screen.getByTestId("connection-close"));
    await waitFor(() => expect(screen.getByTestId("connections-notice")).toHaveTextContent("1 connection closed"));
    expect(calls.find((c) => c.cmd === "close_connections")?.args).toEqual({ ids: [7] });

    // The engine ended it: the next refresh brings an empty list.
    await view.rerender({ connections: [], now: 2000 });
    expect(screen.getByText(/No connection is open/)).toBeInTheDocument();
    expect(screen.getByTestId("connections-notice")).toHaveTextContent("1 connection closed");
  });
});
