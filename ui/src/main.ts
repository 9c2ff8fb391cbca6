import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";

const target = document.getElementById("app");
if (!target) throw new Error("index.html has no #app element");

// VITE_VEIL_DEMO=1 npm run dev: a stand-in backend with made-up data (dev only).
const ready =
  import.meta.env.DEV && import.meta.env.VITE_VEIL_DEMO === "1"
    ? import("./demo").then((m) => m.install())
    : Promise.resolve();

void ready.then(() => mount(App, { target }));
