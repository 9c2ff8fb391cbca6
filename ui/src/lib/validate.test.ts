import { describe, expect, it } from "vitest";
import {
  isLoopbackListen,
  lines,
  validateEndpoints,
  validateListen,
  validateUpstreamName,
  validateUpstreamUrl,
  validateWeight,
} from "./validate";

describe("upstream URL", () => {
  it.each(["socks5://user@host:1080", "http://10.0.0.1:3128", "https://proxy.example.com:443", "socks5://[::1]:1080"])(
    "accepts %s",
    (u) => {
      expect(validateUpstreamUrl(u)).toBeNull();
    },
  );
  it("rejects other schemes and says which ones work", () => {
    expect(validateUpstreamUrl("ftp://host:21")).toMatch(/http:\/\/, https:\/\/ and socks5:\/\//);
    expect(validateUpstreamUrl("socks4://host:1080")).toMatch(/not socks4:/);
  });
  it("rejects junk, empties, paths and passwords in the URL", () => {
    expect(validateUpstreamUrl("")).not.toBeNull();
    expect(validateUpstreamUrl("host:1080")).not.toBeNull();
    expect(validateUpstreamUrl("http://host:1080/path")).toMatch(/no path/);
    expect(validateUpstreamUrl("socks5://me:secret@host:1080")).toMatch(/password field/);
  });
  it("checks names and weights", () => {
    expect(validateUpstreamName("", [])).not.toBeNull();
    expect(validateUpstreamName("home", ["home"])).toMatch(/already exists/);
    expect(validateUpstreamName("vps", ["home"])).toBeNull();
    expect(validateWeight(1)).toBeNull();
    expect(validateWeight(0)).not.toBeNull();
    expect(validateWeight(1.5)).not.toBeNull();
  });
});

describe("settings", () => {
  it("accepts http(s) endpoints only", () => {
    expect(validateEndpoints(["https://api.ipify.org", "http://icanhazip.com"])).toBeNull();
    expect(validateEndpoints(["https://api.ipify.org", "ftp://example.com"])).toMatch(/Line 2 \(ftp:\/\/example.com\)/);
    expect(validateEndpoints(["not a url"])).toMatch(/Line 1/);
    // No endpoints: the IP check is off.
    expect(validateEndpoints([])).toBeNull();
  });
  it("checks listen addresses", () => {
    expect(validateListen("127.0.0.1:7890")).toBeNull();
    expect(validateListen("[::1]:7890")).toBeNull();
    expect(validateListen("127.0.0.1")).not.toBeNull();
    expect(validateListen("127.0.0.1:70000")).toMatch(/65535/);
    expect(validateListen("127.0.0.1:0")).toBeNull();
    // Veil binds an address, not a name.
    expect(validateListen("localhost:7890")).not.toBeNull();
    expect(isLoopbackListen("127.0.0.1:7890")).toBe(true);
    expect(isLoopbackListen("[::1]:7890")).toBe(true);
    expect(isLoopbackListen("0.0.0.0:7890")).toBe(false);
  });
  it("splits lines", () => {
    expect(lines(" a \n\n b\r\nc ")).toEqual(["a", "b", "c"]);
  });
});
