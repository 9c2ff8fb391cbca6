// The shipped catalogues: the same keys in every locale, the same
// placeholders and inline tags per key, nothing empty, and the tray's keys
// that the Rust side loads from the same files.
import { describe, expect, it } from "vitest";
import en from "./en.json";
import zhCN from "./zh-CN.json";
import { placeholders } from "./index.svelte";

const LOCALES: Record<string, Record<string, string>> = { en, "zh-CN": zhCN };

function tags(text: string): string[] {
  return [...text.matchAll(/<\/?(\w+)>/g)].map((m) => m[0]);
}

describe("catalogues", () => {
  for (const [name, cat] of Object.entries(LOCALES)) {
    it(`${name} has every key of en.json and no other`, () => {
      const missing = Object.keys(en).filter((k) => !(k in cat));
      const extra = Object.keys(cat).filter((k) => !(k in en));
      expect({ missing, extra }).toEqual({ missing: [], extra: [] });
    });

    it(`${name} has no empty string`, () => {
      const empty = Object.entries(cat).filter(([, v]) => typeof v !== "string" || v.trim() === "");
      expect(empty.map(([k]) => k)).toEqual([]);
    });

    it(`${name} keeps each key's placeholders and inline tags`, () => {
      const differ = Object.keys(en).filter(
        (k) =>
          k in cat &&
          (placeholders(cat[k]).join() !== placeholders((en as Record<string, string>)[k]).join() ||
            tags(cat[k]).join() !== tags((en as Record<string, string>)[k]).join()),
      );
      expect(differ).toEqual([]);
    });
  }

  it("gives every counted key both forms", () => {
    for (const cat of Object.values(LOCALES)) {
      const keys = Object.keys(cat);
      const one = keys.filter((k) => k.endsWith("_one")).map((k) => k.slice(0, -4));
      const other = keys.filter((k) => k.endsWith("_other")).map((k) => k.slice(0, -6));
      expect(one.sort()).toEqual(other.sort());
    }
  });

  it("holds the tray's strings under flat tray. keys with their placeholders", () => {
    const tray: Record<string, string[]> = {
      "tray.system_proxy": [],
      "tray.upstream": [],
      "tray.direct_item": [],
      "tray.pool_item": ["strategy"],
      "tray.masked": ["addr"],
      "tray.not_masked": ["addr"],
      "tray.ip_unknown": [],
      "tray.not_running": [],
      "tray.route_via": ["name"],
      "tray.route_pool": ["strategy"],
      "tray.route_direct": [],
      "tray.state_line": ["listen", "route"],
      "tray.state_line_attached": ["listen", "pid", "route"],
      "tray.alert": ["what"],
      "tray.drift": ["headline"],
      "tray.drift_reapply": [],
      "tray.drift_leave": [],
      "tray.test_all": [],
      "tray.testing": [],
      "tray.test_now": [],
      "tray.clipboard_refused": ["error"],
      "tray.test_ok": ["ms", "name"],
      "tray.test_failed": ["name", "reason"],
      "tray.close_all": [],
      "tray.copy_exports": [],
      "tray.open": [],
      "tray.quit": [],
      "tray.tooltip": ["down", "up"],
      "tray.tooltip_off": [],
    };
    for (const cat of Object.values(LOCALES)) {
      for (const [key, want] of Object.entries(tray)) {
        expect(key in cat, key).toBe(true);
        expect(placeholders(cat[key]), key).toEqual(want);
      }
      // Flat string values only: serde can read the file as a map of strings.
      expect(Object.values(cat).every((v) => typeof v === "string")).toBe(true);
    }
    expect((en as Record<string, string>)["tray.tooltip"]).toBe("Veil · ↓ {down}/s ↑ {up}/s");
  });

  it("translates every zh-CN string, but for those the same in both languages", () => {
    // Symbols, placeholders only, "URL", "UDP", "VPN", and each language's own name.
    const same = [
      "app.title",
      "format.less_than",
      "overview.rate_now",
      "upstreams.url",
      "upstreams.url_placeholder",
      "coverage.class.udp",
      "coverage.col_vpn",
      "settings.language_en",
      "settings.language_zh",
      "tray.state_line",
      "tray.drift",
    ];
    const untranslated = Object.keys(en).filter(
      (k) => (zhCN as Record<string, string>)[k] === (en as Record<string, string>)[k],
    );
    expect(untranslated.sort()).toEqual(same.sort());
  });
});
