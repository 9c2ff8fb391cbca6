import { afterEach, describe, expect, it } from "vitest";
import { i18n, pluralKey, richParts, setLanguage, systemLocale, t, tList, tn } from "./index.svelte";
import { formatBytes, formatClock, formatCount, formatDuration, formatMs, formatPercent, formatRate, formatRelative } from "../lib/format";

afterEach(() => setLanguage("system"));

describe("language", () => {
  it("follows the first shipped language the OS prefers", () => {
    expect(systemLocale(["zh-CN", "en-US"])).toBe("zh-CN");
    expect(systemLocale(["zh-TW"])).toBe("zh-CN");
    expect(systemLocale(["zh"])).toBe("zh-CN");
    expect(systemLocale(["fr-FR", "zh-CN"])).toBe("zh-CN");
    expect(systemLocale(["en-GB", "zh-CN"])).toBe("en");
    expect(systemLocale(["de-DE"])).toBe("en");
    expect(systemLocale([])).toBe("en");
  });

  it("lets Settings override the OS, and sets <html lang>", () => {
    setLanguage("zh-CN");
    expect(i18n.locale).toBe("zh-CN");
    expect(document.documentElement.lang).toBe("zh-CN");
    expect(t("page.settings")).toBe("设置");
    setLanguage("en");
    expect(t("page.settings")).toBe("Settings");
  });

  it("fills placeholders and picks plural forms by the locale's rules", () => {
    expect(t("overview.route_only", { name: "vps" })).toBe("Only vps");
    expect(tn("leaks.warnings", 1)).toBe("1 warning");
    expect(tn("leaks.warnings", 3)).toBe("3 warnings");
    expect(tn("leaks.warnings", 1234)).toBe("1,234 warnings");
    expect(pluralKey("learn.apps", 1)).toBe("learn.apps_one");
    setLanguage("zh-CN");
    expect(tn("leaks.warnings", 3)).toBe("3 项警告");
    // Chinese has one form: Intl.PluralRules says "other" even for 1.
    expect(pluralKey("learn.apps", 1)).toBe("learn.apps_other");
    expect(tList(["a", "b", "c"])).toBe("a、b和c");
  });

  it("splits inline tags into runs without reading params as markup", () => {
    expect(richParts("leaks.todo", { todo: "<em>x</em>" })).toEqual([
      { tag: "strong", text: "What to do:" },
      { tag: "", text: " <em>x</em>" },
    ]);
  });
});

describe("formatting in the locale", () => {
  it("formats numbers, bytes, rates and durations in English", () => {
    expect(formatCount(12345)).toBe("12,345");
    expect(formatBytes(1_234_567)).toBe("1.2 MB");
    expect(formatRate(1500)).toBe("1.5 KB/s");
    expect(formatDuration(125)).toBe("2 min 5 s");
    expect(formatMs(87)).toBe("87 ms");
    expect(formatPercent(0.423)).toBe("42%");
  });

  it("formats them in Chinese", () => {
    setLanguage("zh-CN");
    expect(formatCount(12345)).toBe("12,345");
    expect(formatRate(1500)).toBe("1.5 KB/秒");
    expect(formatDuration(125)).toBe("2 分钟 5 秒");
    expect(formatDuration(90_000)).toBe("1 天 1 小时");
    expect(formatMs(87)).toBe("87 毫秒");
    expect(formatPercent(0.001)).toBe("<1%");
  });

  it("says relative times and clock times the locale's way", () => {
    const now = Date.UTC(2026, 0, 2, 12, 0, 0);
    expect(formatRelative(now - 5 * 60_000, now)).toBe("5 minutes ago");
    expect(formatRelative(now - 2 * 86_400_000, now)).toBe("2 days ago");
    setLanguage("zh-CN");
    expect(formatRelative(now - 5 * 60_000, now)).toBe("5分钟前");
    expect(formatClock(now)).toMatch(/^\d{2}:\d{2}:\d{2}$/);
  });
});
