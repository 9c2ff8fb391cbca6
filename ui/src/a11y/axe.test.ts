// axe-core on every page of the window, in both themes and both languages,
// in jsdom. jsdom has no layout and no canvas, so the rules that need them
// are off here (listed below); the lead's GUI test runs the full audit,
// colour contrast included, inside the real WebView. Contrast is also
// checked from the palette itself in contrast.test.ts.
import { afterEach, describe, expect, it } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import axe from "axe-core";
import App from "../App.svelte";
import { setLanguage } from "../i18n/index.svelte";
import zhCN from "../i18n/zh-CN.json";
import en from "../i18n/en.json";
import { app, resetAppState } from "../lib/state.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { PAGES, world } from "../test/world";

afterEach(() => {
  resetAppState();
  clearErrors();
  setLanguage("system");
  document.documentElement.removeAttribute("data-theme");
  history.replaceState(null, "", "#/");
});

const NEEDS_LAYOUT = {
  // Computed colours of rendered boxes (and a canvas): not in jsdom.
  "color-contrast": { enabled: false },
  "color-contrast-enhanced": { enabled: false },
  // Whether a box scrolls needs layout.
  "scrollable-region-focusable": { enabled: false },
};

async function audit(): Promise<string[]> {
  const result = await axe.run(document, { rules: NEEDS_LAYOUT, resultTypes: ["violations"] });
  return result.violations.map(
    (v) => `${v.impact}: ${v.id} (${v.help}) at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
}

const CASES = [
  { theme: "light", language: "en" },
  { theme: "dark", language: "en" },
  { theme: "dark", language: "zh-CN" },
] as const;

describe("axe", () => {
  it("runs here (sees a planted violation)", async () => {
    document.body.innerHTML = '<main><button type="button"></button><input type="text"><h1></h1></main>';
    const found = await audit();
    expect(found.some((v) => v.includes("button-name"))).toBe(true);
    expect(found.some((v) => v.includes("label"))).toBe(true);
    document.body.innerHTML = "";
  });

  for (const { theme, language } of CASES) {
    for (const page of PAGES) {
      it(`finds no violation on ${page} (${theme}, ${language})`, async () => {
        history.replaceState(null, "", `#/${page}`);
        mockIPC(world([], { theme, language }));
        render(App);
        const cat = (language === "en" ? en : zhCN) as Record<string, string>;
        await screen.findByText(cat[`page.${page}`], { selector: "h1" });
        await waitFor(() => expect(document.documentElement.getAttribute("data-theme")).toBe(theme));
        if (page === "settings") await screen.findByText(cat["killswitch.title"]);
        expect(await audit()).toEqual([]);
      });
    }
  }

  it("finds no violation in the close question (dark, zh-CN)", async () => {
    mockIPC(world([], { theme: "dark", language: "zh-CN" }));
    render(App);
    await screen.findByText(zhCN["page.overview"], { selector: "h1" });
    app.closeAsked = true;
    const dialog = await screen.findByRole("alertdialog");
    expect(dialog).toHaveTextContent(zhCN["close.title"]);
    expect(await audit()).toEqual([]);
  });
});
