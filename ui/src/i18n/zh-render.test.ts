// Every page of the window in Chinese shows no English catalogue phrase:
// what is left in English comes from the engine (data, Rust messages).
import { afterEach, describe, expect, it } from "vitest";
import { render, screen, waitFor } from "@testing-library/svelte";
import { mockIPC } from "@tauri-apps/api/mocks";
import App from "../App.svelte";
import en from "./en.json";
import zhCN from "./zh-CN.json";
import { setLanguage } from "./index.svelte";
import { resetAppState } from "../lib/state.svelte";
import { clearErrors } from "../lib/errors.svelte";
import { PAGES, world } from "../test/world";

afterEach(() => {
  resetAppState();
  clearErrors();
  setLanguage("system");
  history.replaceState(null, "", "#/");
});

const EN = en as Record<string, string>;
const ZH = zhCN as Record<string, string>;

/** The English phrases a page could show: each message cut at placeholders and tags, letters only, longer than a word. */
const phrases = [
  ...new Set(
    Object.keys(EN)
      .filter((k) => !k.startsWith("tray.") && EN[k] !== ZH[k])
      .flatMap((k) => EN[k].split(/\{\w+\}|<\/?\w+>|\n/))
      .map((p) => p.trim().replace(/^[.,;:()·—✓↓↑\s]+|[.,;:()·\s]+$/g, ""))
      // A phrase kept in both languages (a URL example, "DNS") is not English left behind.
      .filter((p) => /[a-z]{3}/i.test(p) && /\s/.test(p) && !Object.values(ZH).some((z) => z.includes(p))),
  ),
];

/** All text a user meets on the page: text nodes and the names, titles and placeholders. */
function shownText(): string {
  const attrs = [...document.querySelectorAll("[aria-label],[title],[placeholder],[alt]")].flatMap((el) =>
    ["aria-label", "title", "placeholder", "alt"].map((a) => el.getAttribute(a) ?? ""),
  );
  return `${document.body.textContent ?? ""}\n${attrs.join("\n")}`;
}

describe("the window in Chinese", () => {
  it("has English phrases to look for", () => {
    expect(phrases.length).toBeGreaterThan(200);
  });

  for (const page of PAGES) {
    it(`renders the ${page} page without English catalogue text`, async () => {
      history.replaceState(null, "", `#/${page}`);
      mockIPC(world([], { language: "zh-CN" }));
      render(App);
      await waitFor(() => expect(document.getElementById(`nav-${page}`)).toHaveAttribute("aria-current", "page"));
      // Wait for the page's data, then for Settings' own load (it sets the language from the settings).
      await screen.findByText(ZH[`page.${page}`], { selector: "h1" });
      await waitFor(() => expect(document.body.textContent).toContain("版本"));
      if (page === "settings") await screen.findByText(ZH["killswitch.title"]);
      const text = shownText();
      const left = phrases.filter((p) => text.includes(p));
      expect(left).toEqual([]);
      expect(document.documentElement.lang).toBe("zh-CN");
      expect(document.title).toBe(`${ZH[`page.${page}`]} · Veil`);
    });
  }

  it("follows the saved language on load", async () => {
    mockIPC(world([], { language: "zh-CN" }));
    render(App);
    await screen.findByText(ZH["page.overview"], { selector: "h1" });
    expect(screen.getByRole("navigation")).toHaveTextContent(ZH["page.settings"]);
  });
});
