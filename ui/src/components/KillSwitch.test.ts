import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import KillSwitch from "./KillSwitch.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { handler, type Calls } from "../test/fixtures";

afterEach(() => clearErrors());

describe("KillSwitch", () => {
  it("shows the kill switch on and saves the user's choice at once", async () => {
    const calls: Calls = [];
    mockIPC(handler({ get_fallback_direct: false, set_fallback_direct: (a) => a.allowed }, calls));
    render(KillSwitch);
    const box = (await screen.findByLabelText(/Go direct when no upstream proxy works/)) as HTMLInputElement;
    expect(box.checked).toBe(false);
    expect(screen.getByTestId("kill-switch")).toHaveTextContent("Kill switch on");

    await fireEvent.click(box);
    await waitFor(() => expect(screen.getByTestId("kill-switch")).toHaveTextContent("leaves from your real address"));
    expect(calls.find((c) => c.cmd === "set_fallback_direct")?.args).toEqual({ allowed: true });
  });

  it("says so in place when the setting cannot be read", async () => {
    mockIPC(handler({}, []));
    render(KillSwitch);
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("could not be read"));
  });
});
