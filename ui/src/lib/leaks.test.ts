import { describe, expect, it } from "vitest";
import { checksFor, leakSummary } from "./leaks";
import { leaks } from "../test/fixtures";

describe("leaks", () => {
  it("summarises like veil leaks", () => {
    expect(leakSummary(leaks())).toBe("3 warnings, 1 unknown, 3 passed.");
  });

  it("picks checks in the order asked", () => {
    expect(checksFor(leaks(), ["udp", "resolving_apps"]).map((c) => c.id)).toEqual(["udp", "resolving_apps"]);
    expect(checksFor(null, ["udp"])).toEqual([]);
  });
});
