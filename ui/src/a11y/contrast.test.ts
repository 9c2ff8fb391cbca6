// WCAG contrast of the palette in app.css, both themes: 4.5:1 for text,
// 3:1 for the edges of controls, the focus ring and the charts' lines. The
// pairs are the ones the stylesheets put together (text on its backgrounds,
// each badge's text on its tint, button text on its fill).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const CSS = readFileSync(join(__dirname, "..", "app.css"), "utf8");

function block(selector: string, from = 0): Record<string, string> {
  const at = CSS.indexOf(selector, from);
  if (at < 0) throw new Error(`app.css has no ${selector}`);
  const open = CSS.indexOf("{", at);
  const close = CSS.indexOf("}", open);
  return Object.fromEntries([...CSS.slice(open + 1, close).matchAll(/--([\w-]+):\s*(#[0-9a-fA-F]{6})\b/g)].map((m) => [m[1], m[2]]));
}

const LIGHT = block(":root {");
const DARK_SET = block(':root[data-theme="dark"] {');
const DARK_SYSTEM = block(':root:not([data-theme="light"]) {');
const DARK = { ...LIGHT, ...DARK_SET };

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

const TEXT: [string, string][] = [
  ["text", "bg"],
  ["text", "surface"],
  ["text", "surface-2"],
  ["text", "accent-soft"],
  ["text", "warn-soft"],
  ["text", "bad-soft"],
  ["muted", "bg"],
  ["muted", "surface"],
  ["muted", "surface-2"],
  ["muted", "neutral-soft"],
  ["muted", "warn-soft"],
  ["muted", "bad-soft"],
  ["muted", "accent-soft"],
  ["accent", "bg"],
  ["accent", "surface"],
  ["accent", "accent-soft"],
  ["accent-text", "accent"],
  ["good", "surface"],
  ["good", "good-soft"],
  ["warn", "surface"],
  ["warn", "surface-2"],
  ["warn", "warn-soft"],
  ["bad", "surface"],
  ["bad", "bad-soft"],
  ["bad", "accent-soft"],
  ["surface", "bad"],
];

const UI: [string, string][] = [
  ["control-border", "surface"],
  ["control-border", "bg"],
  ["focus", "bg"],
  ["focus", "surface"],
  ["focus", "surface-2"],
  ["good", "surface"],
  ["chart-up", "surface"],
  ["chart-down", "surface"],
];

describe("palette contrast", () => {
  it("has the same dark palette whether chosen or followed from the system", () => {
    expect(DARK_SYSTEM).toEqual(DARK_SET);
  });

  for (const [theme, palette] of [
    ["light", LIGHT],
    ["dark", DARK],
  ] as const) {
    it(`${theme}: text is 4.5:1 or more on its backgrounds`, () => {
      const low = TEXT.map(([fg, bg]) => [fg, bg, contrast(palette[fg], palette[bg])] as const)
        .filter(([, , r]) => !(r >= 4.5))
        .map(([fg, bg, r]) => `${fg} on ${bg}: ${r.toFixed(2)}`);
      expect(low).toEqual([]);
    });

    it(`${theme}: control edges, the focus ring and chart lines are 3:1 or more`, () => {
      const low = UI.map(([fg, bg]) => [fg, bg, contrast(palette[fg], palette[bg])] as const)
        .filter(([, , r]) => !(r >= 3))
        .map(([fg, bg, r]) => `${fg} on ${bg}: ${r.toFixed(2)}`);
      expect(low).toEqual([]);
    });
  }

  it("computes WCAG ratios", () => {
    expect(contrast("#000000", "#ffffff")).toBeCloseTo(21, 5);
    expect(contrast("#777777", "#ffffff")).toBeCloseTo(4.48, 2);
  });
});
