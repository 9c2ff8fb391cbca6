// Checks run in the window before a command is sent, so a mistake is shown next
// to its field. The engine validates again; its AppError is shown as well.
import { t } from "../i18n/index.svelte";

export const UPSTREAM_SCHEMES = ["http:", "https:", "socks5:"] as const;

/** null when the upstream URL is usable, else a sentence saying what to fix. */
export function validateUpstreamUrl(raw: string): string | null {
  const text = raw.trim();
  if (text === "") return t("validate.url_empty");
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return t("validate.url_not_url");
  }
  if (!(UPSTREAM_SCHEMES as readonly string[]).includes(url.protocol)) {
    return t("validate.url_scheme", { scheme: url.protocol });
  }
  if (url.hostname === "") return t("validate.url_no_host");
  if (url.password !== "") {
    return t("validate.url_password");
  }
  if (url.pathname !== "/" && url.pathname !== "" ) {
    return t("validate.url_path");
  }
  return null;
}

export function validateUpstreamName(name: string, taken: string[]): string | null {
  const n = name.trim();
  if (n === "") return t("validate.name_empty");
  if (n.length > 64) return t("validate.name_long");
  if (taken.includes(n)) return t("validate.name_taken", { name: n });
  return null;
}

export function validateWeight(w: number): string | null {
  if (!Number.isInteger(w) || w < 1 || w > 1000) return t("validate.weight");
  return null;
}

/** Splits a textarea into trimmed, non-empty lines. */
export function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
}

/** IP-check endpoints: http(s) URLs only, at least one. */
export function validateEndpoints(list: string[]): string | null {
  // An empty list turns the IP check off (nothing is fetched).
  for (const [i, e] of list.entries()) {
    let url: URL | null = null;
    try {
      url = new URL(e);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
      return t("validate.endpoint", { line: i + 1, text: e });
    }
  }
  return null;
}

/** An IP address and a port 0..65535 (0: any free port); IPv6 in brackets:
 * [::1]:7890. Names such as localhost are not accepted (Veil binds an address). */
export function validateListen(text: string): string | null {
  const addr = text.trim();
  const m = /^(\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(addr);
  if (!m) return t("validate.listen");
  const port = Number(m[2]);
  if (port > 65535) return t("validate.port");
  return null;
}

/** Whether a listen address stays on this machine. */
export function isLoopbackListen(text: string): boolean {
  const host = text.trim().replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export function validateWholeNumber(n: number, min: number, max: number, what: string): string | null {
  if (!Number.isInteger(n) || n < min || n > max) return t("validate.whole_number", { what, min, max });
  return null;
}
