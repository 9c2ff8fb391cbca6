// The window's words, in one catalogue per locale (en.json, zh-CN.json; the
// tray reads the same files' "tray." keys on the Rust side). Keys are flat,
// dotted names; values use {name} placeholders. Counted phrases come in
// `_one`/`_other` pairs chosen by Intl.PluralRules. The key type is derived
// from en.json, so a mistyped key fails `npm run check`.
import en from "./en.json";
import zhCN from "./zh-CN.json";

import type { Language } from "../bindings";

export type Locale = Exclude<Language, "system">;
/** The Settings choice: follow the OS, or one of the shipped locales. */
export type LanguageSetting = Language;
export type MessageKey = keyof typeof en;
/** The base of each `_one`/`_other` pair: "upstreams.count" for "upstreams.count_one". */
export type PluralKey = MessageKey extends infer K ? (K extends `${infer B}_other` ? B : never) : never;
export type Params = Record<string, string | number>;

export const LOCALES: readonly Locale[] = ["en", "zh-CN"];

// A missing key in zh-CN.json is a type error here as well as a test failure.
export const CATALOGUES: Record<Locale, Record<MessageKey, string>> = { en, "zh-CN": zhCN };

/** The first of the OS's preferred languages that Veil ships; English otherwise. */
export function systemLocale(languages?: readonly string[]): Locale {
  const list =
    languages ??
    (typeof navigator !== "undefined" ? (navigator.languages?.length ? navigator.languages : [navigator.language]) : []);
  for (const tag of list) {
    const l = (tag ?? "").toLowerCase();
    if (l === "zh" || l.startsWith("zh-") || l.startsWith("zh_")) return "zh-CN";
    if (l === "en" || l.startsWith("en-") || l.startsWith("en_")) return "en";
  }
  return "en";
}

class I18n {
  /** what Settings says */
  setting = $state<LanguageSetting>("system");
  /** what the OS prefers, kept current by the languagechange event */
  system = $state<Locale>(systemLocale());
  /** the locale the window shows */
  locale = $derived<Locale>(this.setting === "system" ? this.system : this.setting);
}

export const i18n = new I18n();

/** Applies the language setting: every t() call re-renders, <html lang> follows. */
export function setLanguage(setting: LanguageSetting): void {
  i18n.setting = LOCALES.includes(setting as Locale) || setting === "system" ? setting : "system";
  if (typeof document !== "undefined") document.documentElement.lang = i18n.locale;
}

/** Follows the OS's language list; returns the function that stops following. */
export function followSystemLanguage(): () => void {
  if (typeof window === "undefined") return () => {};
  const changed = () => {
    i18n.system = systemLocale();
    setLanguage(i18n.setting);
  };
  window.addEventListener("languagechange", changed);
  return () => window.removeEventListener("languagechange", changed);
}

function fill(template: string, params?: Params): string {
  if (!params) return template;
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

function template(key: MessageKey): string {
  return CATALOGUES[i18n.locale][key] ?? CATALOGUES.en[key] ?? key;
}

/** The message for `key` in the current locale, placeholders filled. */
export function t(key: MessageKey, params?: Params): string {
  return fill(template(key), params);
}

/** Which of a counted message's keys the locale's plural rules pick for `count`. */
export function pluralKey(key: PluralKey, count: number): MessageKey {
  const rule = new Intl.PluralRules(i18n.locale).select(count);
  const full = `${key}_${rule}`;
  return (full in CATALOGUES.en ? full : `${key}_other`) as MessageKey;
}

/** A counted message: `key_one` or `key_other` by the locale's plural rules; {count} is the formatted count. */
export function tn(key: PluralKey, count: number, params?: Params): string {
  return fill(template(pluralKey(key, count)), { count: new Intl.NumberFormat(i18n.locale).format(count), ...params });
}

/** "a, b and c" in the locale's way (Intl.ListFormat). */
export function tList(items: string[]): string {
  return new Intl.ListFormat(i18n.locale, { style: "long", type: "conjunction" }).format(items);
}

/** One run of a message with inline markup: plain, <code>, <strong> or <em>. */
export interface RichPart {
  tag: "" | "code" | "strong" | "em";
  text: string;
}

/** The message split at its inline tags (no HTML is ever injected: each run is text). */
export function richParts(key: MessageKey, params?: Params): RichPart[] {
  const parts: RichPart[] = [];
  const re = /<(code|strong|em)>(.*?)<\/\1>/g;
  const src = template(key);
  let at = 0;
  for (let m = re.exec(src); m; m = re.exec(src)) {
    if (m.index > at) parts.push({ tag: "", text: fill(src.slice(at, m.index), params) });
    parts.push({ tag: m[1] as RichPart["tag"], text: fill(m[2], params) });
    at = m.index + m[0].length;
  }
  if (at < src.length) parts.push({ tag: "", text: fill(src.slice(at), params) });
  return parts;
}

/** The placeholders of a template, sorted: "{a} and {b}" -> ["a", "b"]. */
export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]))].sort();
}
