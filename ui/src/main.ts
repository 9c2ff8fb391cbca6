import { mount } from "svelte";
import "./app.css";

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");

// A session without a language (LANG=C) gives WebKit the tag "C", which
// Intl refuses; uPlot formats numbers with navigator.language as soon as it
// loads. Fall back to a valid tag before anything that formats is imported.
function ensureValidLanguage(): void {
  try {
    new Intl.NumberFormat(navigator.language);
  } catch {
    Object.defineProperty(navigator, "language", { value: "en-US", configurable: true });
  }
}
ensureValidLanguage();

// VITE_VEIL_DEMO=1 npm run dev: a stand-in backend with made-up data (dev only).
const ready =
  import.meta.env.DEV && import.meta.env.VITE_VEIL_DEMO === "1"
    ? import("./demo").then((m) => m.install())
    : Promise.resolve();

void ready
  .then(() => import("./App.svelte"))
  .then(({ default: App }) => mount(App, { target }));
