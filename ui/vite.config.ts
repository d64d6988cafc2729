/// <reference types="vitest/config" />
import { defineConfig } from "vite";

// The webview loads the files from the app bundle: relative base, no CDN, no inline script
// (the CSP is `default-src 'self'`).
export default defineConfig({
  base: "./",
  clearScreen: false,
  esbuild: {
    jsx: "automatic",
    jsxImportSource: "preact",
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2021",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    port: 1420,
    strictPort: true,
  },
  // `vite preview` serves the build under the strict CSP the shell will use, to catch regressions.
  preview: {
    port: 4173,
    headers: { "Content-Security-Policy": "default-src 'self'; img-src 'self' data:" },
  },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
  },
});
