import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import SettingsPage from "./Settings.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { resetAppState } from "../lib/state.svelte";
import { handler, settings, type Calls } from "../test/fixtures";
import type { Settings } from "../bindings";
import { setLanguage } from "../i18n/index.svelte";

afterEach(() => {
  resetAppState();
  clearErrors();
  document.documentElement.removeAttribute("data-theme");
  setLanguage("system");
});

function field(id: string): HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no #${id}`);
  return el as HTMLInputElement;
}

describe("Settings", () => {
  it("offers the PAC file, says plainly what fail-open trades, and saves the choice", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          get_settings: settings(),
          save_settings: (args) => ({ settings: (args as { settings: Settings }).settings, notice: null }),
        },
        calls,
      ),
    );
    render(SettingsPage);
    const group = await screen.findByTestId("apps-reach");
    const failOpen = group.querySelector('input[value="pac_fail_open"]') as HTMLInputElement;
    expect((group.querySelector('input[value="manual"]') as HTMLInputElement).checked).toBe(true);
    expect(screen.queryByTestId("fail-open-warning")).toBeNull();
    await fireEvent.click(failOpen);
    expect(screen.getByTestId("fail-open-warning")).toHaveTextContent("trades privacy for availability");
    await fireEvent.click(document.getElementById("settings-save")!);
    await waitFor(() => expect(calls.some((c) => c.cmd === "save_settings")).toBe(true));
    const saved = calls.find((c) => c.cmd === "save_settings")?.args as { settings: Settings };
    expect(saved.settings.apps_reach).toBe("pac_fail_open");
  });

  it("refuses non-http(s) endpoints next to the field and does not save", async () => {
    const calls: Calls = [];
    mockIPC(handler({ get_settings: settings() }, calls));
    render(SettingsPage);
    await waitFor(() => expect(field("settings-endpoints").value).toContain("https://api.ipify.org"));

    await fireEvent.input(field("settings-endpoints"), {
      target: { value: "https://api.ipify.org\nftp://example.com/ip" },
    });
    expect(screen.getByTestId("endpoints-msg")).toHaveTextContent("Line 2 (ftp://example.com/ip)");
    expect(field("settings-endpoints").getAttribute("aria-invalid")).toBe("true");

    await fireEvent.click(document.getElementById("settings-save")!);
    expect(await screen.findByRole("alert")).toHaveTextContent("Fix the fields marked in red");
    expect(calls.some((c) => c.cmd === "save_settings")).toBe(false);
  });

  it("saves the form as Settings and shows the notice and theme", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          get_settings: settings(),
          save_settings: (a) => ({ settings: a.settings as Settings, notice: "Listening on 127.0.0.1:8000 now." }),
        },
        calls,
      ),
    );
    render(SettingsPage);
    await waitFor(() => expect(field("settings-listen").value).toBe("127.0.0.1:7890"));
    await fireEvent.input(field("settings-listen"), { target: { value: "127.0.0.1:8000" } });
    await fireEvent.input(field("settings-bypass"), { target: { value: "localhost\n\n  intranet.example  \n" } });
    await fireEvent.change(field("settings-theme"), { target: { value: "dark" } });
    await fireEvent.click(document.getElementById("settings-save")!);

    expect(await screen.findByTestId("settings-notice")).toHaveTextContent("Listening on 127.0.0.1:8000 now.");
    expect(calls.find((c) => c.cmd === "save_settings")?.args).toEqual({
      settings: settings({ listen: "127.0.0.1:8000", bypass: ["localhost", "intranet.example"], theme: "dark" }),
    });
    expect(document.documentElement.getAttribute("data-theme")).toBe("dark");
  });

  it("checks the listen address inline", async () => {
    mockIPC(handler({ get_settings: settings() }, []));
    render(SettingsPage);
    await waitFor(() => expect(field("settings-listen").value).toBe("127.0.0.1:7890"));
    await fireEvent.input(field("settings-listen"), { target: { value: "localhost" } });
    expect(document.getElementById("settings-listen-msg")).toHaveTextContent("Use an IP address and port");
    await fireEvent.input(field("settings-listen"), { target: { value: "0.0.0.0:7890" } });
    expect(document.getElementById("settings-listen-msg")).toHaveTextContent("Other machines could reach");
  });

  it("switches the window to the chosen language when saved, and saves the choice", async () => {
    const calls: Calls = [];
    mockIPC(
      handler(
        {
          get_settings: settings(),
          save_settings: (a) => ({ settings: a.settings as Settings, notice: null }),
        },
        calls,
      ),
    );
    render(SettingsPage);
    await waitFor(() => expect(field("settings-language").value).toBe("system"));
    expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("Settings");
    await fireEvent.change(field("settings-language"), { target: { value: "zh-CN" } });
    await fireEvent.click(document.getElementById("settings-save")!);
    await waitFor(() => expect(screen.getByRole("heading", { level: 1 })).toHaveTextContent("设置"));
    expect(screen.getByTestId("settings-notice")).toHaveTextContent("设置已保存。");
    expect(document.documentElement.lang).toBe("zh-CN");
    expect(calls.find((c) => c.cmd === "save_settings")?.args).toEqual({ settings: settings({ language: "zh-CN" }) });
  });
});
