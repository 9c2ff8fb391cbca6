import { defineConfig } from "vitest/config";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { svelteTesting } from "@testing-library/svelte/vite";

// The dev server port is configurable so that Tauri's `devUrl` and this agree:
// VEIL_UI_PORT=1420 npm run dev. Production builds are loaded from ui/dist.
const port = Number(process.env.VEIL_UI_PORT ?? 1420);

export default defineConfig({
  plugins: [svelte(), svelteTesting()],
  clearScreen: false,
  server: {
    port,
    strictPort: true,
    host: process.env.VEIL_UI_HOST ?? "127.0.0.1",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // WebView2 (Chromium) on Windows, WebKit on macOS and Linux.
    target: ["es2021", "chrome105", "safari15"],
    // Keep CSS in files (the CSP has no 'unsafe-inline' for styles).
    cssCodeSplit: false,
    assetsInlineLimit: 0,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.ts"],
  },
});
