import { describe, expect, it } from "vitest";
import { sortApps, totalsSentence } from "./coverage";
import { coverage } from "../test/fixtures";

describe("coverage helpers", () => {
  it("writes the totals sentence", () => {
    expect(totalsSentence(coverage().totals)).toBe(
      "2 apps covered, 1 bypassing, 1 using UDP; a VPN would capture all 4.",
    );
    expect(
      totalsSentence({ apps: 1, covered: 1, bypassing: 0, udp: 0, local_only: 0, vpn_would_capture: 1 }),
    ).toBe("1 app covered, 0 bypassing, 0 using UDP; a VPN would capture all 1.");
  });
  it("puts the worst apps first", () => {
    expect(sortApps(coverage().apps).map((a) => a.name)).toEqual(["spotify", "chrome", "curl", "firefox", "cupsd"]);
  });
});
