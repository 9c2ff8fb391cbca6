import { describe, expect, it } from "vitest";
import { formatAge, formatBytes, formatCount, formatDuration, formatMs, formatPercent, formatRate, ratio } from "./format";

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [999, "999 B"],
    [1000, "1.0 KB"],
    [1234, "1.2 KB"],
    [123_456, "123 KB"],
    [1_200_000, "1.2 MB"],
    [999_999, "1.0 MB"],
    [5_500_000_000, "5.5 GB"],
    [-5, "0 B"],
    [Number.NaN, "0 B"],
  ])("%s bytes -> %s", (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });
});

describe("formatRate", () => {
  it("adds per second", () => {
    expect(formatRate(1500)).toBe("1.5 KB/s");
    expect(formatRate(0)).toBe("0 B/s");
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0 s"],
    [45, "45 s"],
    [60, "1 min"],
    [125, "2 min 5 s"],
    [3600, "1 h"],
    [3700, "1 h 1 min"],
    [90_000, "1 d 1 h"],
    [86_400 + 59, "1 d"],
  ])("%s s -> %s", (s, text) => {
    expect(formatDuration(s)).toBe(text);
  });

  it("ages from two instants", () => {
    expect(formatAge(1_000, 126_000)).toBe("2 min 5 s");
  });
});

describe("small helpers", () => {
  it("formats latency", () => {
    expect(formatMs(87.4)).toBe("87 ms");
    expect(formatMs(1530)).toBe("1.5 s");
    expect(formatMs(null)).toBe("—");
  });
  it("formats ratios", () => {
    expect(formatPercent(0.423)).toBe("42%");
    expect(formatPercent(1)).toBe("100%");
    expect(formatPercent(0.001)).toBe("<1%");
    expect(formatPercent(null)).toBe("—");
    expect(ratio(3, 1)).toBe(0.75);
    expect(ratio(0, 0)).toBeNull();
  });
  it("counts", () => {
    expect(formatCount(12345)).toBe("12,345");
  });
});
