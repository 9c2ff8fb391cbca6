// Every word the window shows comes from the catalogue. This reads each
// component (and each lib module) and fails on user-visible literal text:
// text nodes with letters, the text of aria-label/title/placeholder/alt and of
// the components' label props, and prose-like string literals in template
// expressions and scripts, unless it is a catalogue key or on the short
// allow-list below.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "svelte/compiler";
import en from "./en.json";

const SRC = join(__dirname, "..");
const KEYS = new Set(Object.keys(en));

/** Text that is not a translatable phrase: the product name and its logo letter. */
const ALLOWED_TEXT = new Set(["Veil", "V"]);
/** String literals that look like prose but are CSS, media queries or SI unit symbols (the same in every locale). */
const ALLOWED_LITERALS = new Set([
  "11px system-ui, sans-serif",
  "(prefers-color-scheme: dark)",
  "B",
  "KB",
  "MB",
  "GB",
  "TB",
  "PB",
]);
/** Attributes and component props whose text is read or shown to the user. */
const SHOWN_ATTRIBUTES = new Set([
  "aria-label",
  "aria-description",
  "aria-roledescription",
  "aria-placeholder",
  "aria-valuetext",
  "title",
  "placeholder",
  "alt",
  "label",
  "question",
  "confirmLabel",
]);

const LETTER = /\p{L}/u;

function looksLikeProse(s: string): boolean {
  if (!LETTER.test(s) || KEYS.has(s) || ALLOWED_LITERALS.has(s) || ALLOWED_TEXT.has(s.trim())) return false;
  return /\s/.test(s.trim()) || /^\p{Lu}/u.test(s) || /\p{Script=Han}/u.test(s) || /[…]$/.test(s);
}

interface Finding {
  file: string;
  line: number;
  text: string;
}

type Node = { type?: string; start?: number; [k: string]: unknown };

function lineOf(source: string, at: number | undefined): number {
  return at === undefined ? 0 : source.slice(0, at).split("\n").length;
}

function scan(file: string, source: string, ast: unknown, out: Finding[]): void {
  const report = (node: Node, text: string) => out.push({ file, line: lineOf(source, node.start), text: text.trim() });
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    if (!value || typeof value !== "object") return;
    const node = value as Node;
    switch (node.type) {
      case "ImportDeclaration":
      case "Comment":
      case "StyleSheet":
        return;
      case "Text": {
        const data = String(node.data ?? "");
        if (LETTER.test(data) && !ALLOWED_TEXT.has(data.trim())) report(node, data);
        return;
      }
      case "Attribute": {
        const parts = Array.isArray(node.value) ? (node.value as Node[]) : [];
        const shown = SHOWN_ATTRIBUTES.has(String(node.name));
        for (const p of parts) {
          if (p.type === "Text") {
            if (shown && LETTER.test(String(p.data)) && !ALLOWED_TEXT.has(String(p.data).trim())) report(p, String(p.data));
          } else visit(p);
        }
        if (!Array.isArray(node.value)) visit(node.value);
        return;
      }
      case "Literal":
        if (typeof node.value === "string" && looksLikeProse(node.value)) report(node, node.value);
        return;
      case "TemplateElement": {
        const cooked = (node.value as { cooked?: string })?.cooked ?? "";
        if (looksLikeProse(cooked)) report(node, cooked);
        return;
      }
    }
    for (const [k, v] of Object.entries(node)) {
      if (k === "loc" || k === "metadata" || k === "parent") continue;
      visit(v);
    }
  };
  visit(ast);
}

function files(dir: string, ext: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path, ext);
    return path.endsWith(ext) ? [path] : [];
  });
}

const SVELTE = files(SRC, ".svelte");
// The stand-in backend (demo.ts) and generated bindings carry data, not words.
const MODULES = files(join(SRC, "lib"), ".ts").filter((f) => !f.endsWith(".test.ts"));

function findings(paths: string[], wrap: boolean): Finding[] {
  const out: Finding[] = [];
  for (const path of paths) {
    const source = readFileSync(path, "utf8");
    const text = wrap ? `<script lang="ts">${source}</script>` : source;
    const ast = parse(text, { modern: true });
    scan(relative(SRC, path), text, { fragment: ast.fragment, instance: ast.instance, module: ast.module }, out);
  }
  return out;
}

describe("no literal text outside the catalogue", () => {
  it("finds the components", () => {
    expect(SVELTE.length).toBeGreaterThan(15);
  });

  it("components write no user-visible words themselves", () => {
    expect(findings(SVELTE, false)).toEqual([]);
  });

  it("lib modules write no user-visible words themselves", () => {
    expect(findings(MODULES, true)).toEqual([]);
  });

  it("catches what it should (a planted component)", () => {
    const planted =
      '<script lang="ts">const x = "Some words";</script><p title="Hover text">Hello {ok ? "Yes please" : t("page.cache")}</p><i aria-label="x">{t("page.cache")}</i>';
    const out: Finding[] = [];
    const ast = parse(planted, { modern: true });
    scan("planted.svelte", planted, { fragment: ast.fragment, instance: ast.instance }, out);
    expect(out.map((f) => f.text).sort()).toEqual(["Hello", "Hover text", "Some words", "Yes please", "x"].sort());
  });
});
