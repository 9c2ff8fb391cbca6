import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import Cache from "./Cache.svelte";
import { app, resetAppState } from "../lib/state.svelte";
import { cacheStats, handler, stats, type Calls } from "../test/fixtures";

afterEach(() => resetAppState());

describe("Cache", () => {
  it("shows the tiers and clears after confirming", async () => {
    app.stats = stats();
    const calls: Calls = [];
    mockIPC(
      handler({ cache_clear: cacheStats({ memory_objects: 0, disk_objects: 0, memory_bytes: 0, disk_bytes: 0 }) }, calls),
    );
    render(Cache);
    expect(screen.getByTestId("cache-memory-objects")).toHaveTextContent("4");
    expect(screen.getByTestId("cache-disk-objects")).toHaveTextContent("2");
    expect(screen.getByTestId("cache-ratio")).toHaveTextContent("50%");
    expect(screen.getByText(/HTTPS is never cached/)).toBeInTheDocument();

    await fireEvent.click(screen.getByTestId("cache-clear"));
    expect(calls).toHaveLength(0);
    await fireEvent.click(screen.getByTestId("cache-clear-confirm"));
    await waitFor(() => expect(screen.getByTestId("cache-memory-objects")).toHaveTextContent("0"));
    expect(calls.map((c) => c.cmd)).toEqual(["cache_clear"]);
  });
});
