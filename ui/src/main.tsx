import { render } from "preact";
import { fakeBackend, runningInTauri, tauriBackend } from "./backend";
import { App } from "./app";
import { simulate } from "./simulator";
import "./styles.css";

// In the Tauri webview the real shell answers; in a plain browser (`npm run dev`) a simulated
// training line does, so the UI can be tried without Rust.
const backend = runningInTauri() ? tauriBackend() : simulate(fakeBackend());
const root = document.getElementById("app");
if (root) render(<App backend={backend} />, root);
