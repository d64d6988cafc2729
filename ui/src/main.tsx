import { render } from "preact";
import { fakeBackend, runningInTauri, tauriBackend } from "./backend";
import { App, TABS, type Tab } from "./app";
import { simulate } from "./simulator";
import "./styles.css";

// In the Tauri webview the real shell answers; in a plain browser (`npm run dev`) a simulated
// training line does, so the UI can be tried without Rust (`#auto-answer`, `#tab=settings`).
const hash = location.hash;
const backend = runningInTauri() ? tauriBackend() : simulate(fakeBackend(), { autoAnswer: hash.includes("auto-answer") });
const tab = TABS.find((name) => hash.includes(`tab=${name}`)) satisfies Tab | undefined;
const root = document.getElementById("app");
if (root) render(<App backend={backend} initialTab={tab ?? "phone"} />, root);
