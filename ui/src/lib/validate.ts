// Checks run in the window before a command is sent, so a mistake is shown next
// to its field. The engine validates again; its AppError is shown as well.

export const UPSTREAM_SCHEMES = ["http:", "https:", "socks5:"] as const;

/** null when the upstream URL is usable, else a sentence saying what to fix. */
export function validateUpstreamUrl(raw: string): string | null {
  const text = raw.trim();
  if (text === "") return "Enter the upstream's URL, e.g. socks5://user@host:1080.";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "This is not a URL. Use the form scheme://host:port, e.g. socks5://host:1080.";
  }
  if (!(UPSTREAM_SCHEMES as readonly string[]).includes(url.protocol)) {
    return `Only http://, https:// and socks5:// upstreams are supported, not ${url.protocol}//.`;
  }
  if (url.hostname === "") return "The URL needs a host, e.g. socks5://host:1080.";
  if (url.password !== "") {
    return "Put the password in the password field, not in the URL: the URL is stored in a plain file.";
  }
  if (url.pathname !== "/" && url.pathname !== "" ) {
    return "An upstream URL has no path: use scheme://host:port only.";
  }
  return null;
}

export function validateUpstreamName(name: string, taken: string[]): string | null {
  const n = name.trim();
  if (n === "") return "Give this upstream a name, e.g. home or vps-1.";
  if (n.length > 64) return "Keep the name under 64 characters.";
  if (taken.includes(n)) return `An upstream named ${n} already exists. Choose another name.`;
  return null;
}

export function validateWeight(w: number): string | null {
  if (!Number.isInteger(w) || w < 1 || w > 1000) return "Weight is a whole number from 1 to 1000.";
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
      return `Line ${i + 1} (${e}) is not an http:// or https:// URL. Only http(s) endpoints can be checked.`;
    }
  }
  return null;
}

/** An IP address and a port 0..65535 (0: any free port); IPv6 in brackets:
 * [::1]:7890. Names such as localhost are not accepted (Veil binds an address). */
export function validateListen(text: string): string | null {
  const t = text.trim();
  const m = /^(\[[0-9a-fA-F:.]+\]|\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(t);
  if (!m) return "Use an IP address and port, e.g. 127.0.0.1:7890 (IPv6 in brackets: [::1]:7890).";
  const port = Number(m[2]);
  if (port > 65535) return "The port is a number from 0 to 65535 (0 picks a free one).";
  return null;
}

/** Whether a listen address stays on this machine. */
export function isLoopbackListen(text: string): boolean {
  const host = text.trim().replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

export function validateWholeNumber(n: number, min: number, max: number, what: string): string | null {
  if (!Number.isInteger(n) || n < min || n > max) return `${what} is a whole number from ${min} to ${max}.`;
  return null;
}
