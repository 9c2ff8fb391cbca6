// Test environment: jsdom has no matchMedia, canvas or ResizeObserver. uPlot
// draws on a canvas, so it is replaced by a stand-in that records its data.
import { afterEach, vi } from "vitest";
import { clearMocks } from "@tauri-apps/api/mocks";
import "@testing-library/jest-dom/vitest";

if (typeof window.matchMedia !== "function") {
  Object.defineProperty(window, "matchMedia", {
    writable: true,
    value: (query: string) => ({
      matches: false,
      media: query,
      onchange: null,
      addEventListener: () => {},
      removeEventListener: () => {},
      addListener: () => {},
      removeListener: () => {},
      dispatchEvent: () => false,
    }),
  });
}

vi.mock("uplot", () => {
  class FakePlot {
    static instances: FakePlot[] = [];
    data: unknown;
    constructor(_opts: unknown, data: unknown, _el: HTMLElement) {
      this.data = data;
      FakePlot.instances.push(this);
    }
    setData(d: unknown) {
      this.data = d;
    }
    setSize() {}
    destroy() {}
  }
  return { default: FakePlot };
});

afterEach(() => {
  clearMocks();
});
