import { afterEach, describe, expect, it } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import { flushSync } from "svelte";
import LiveAnnouncer from "./LiveAnnouncer.svelte";
import { app, resetAppState } from "../lib/state.svelte";
import { stats } from "../test/fixtures";
import { ipReport, worldStats } from "../test/world";

afterEach(() => resetAppState());

describe("LiveAnnouncer", () => {
  it("says politely when an upstream goes down or works again, not what was already so", async () => {
    app.stats = worldStats(); // home up, vps down from the start: nothing to say
    render(LiveAnnouncer);
    const live = screen.getByTestId("live");
    expect(live).toHaveAttribute("role", "status");
    expect(live).toHaveAttribute("aria-live", "polite");
    expect(live).toHaveTextContent(/^$/);
    const [home, vps] = worldStats().upstreams;
    app.stats = stats({ upstreams: [{ ...home, healthy: false }, vps] });
    flushSync();
    await waitFor(() => expect(live).toHaveTextContent("Upstream home is down."));
    app.stats = stats({ upstreams: [{ ...home, healthy: false }, { ...vps, healthy: true }] });
    flushSync();
    await waitFor(() => expect(live).toHaveTextContent("Upstream vps works again."));
  });

  it("says a new masked-IP verdict with its reason", async () => {
    app.ip = ipReport;
    render(LiveAnnouncer);
    const live = screen.getByTestId("live");
    expect(live).toHaveTextContent(/^$/);
    app.ip = { ...ipReport, verdict: "not_masked", reason: "Both paths show 203.0.113.5.", checked_unix_ms: ipReport.checked_unix_ms + 1 };
    flushSync();
    await waitFor(() => expect(live).toHaveTextContent("Masked IP: NOT masked. Both paths show 203.0.113.5."));
  });
});
