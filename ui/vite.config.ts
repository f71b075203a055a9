import { defineConfig } from "vite";

// Plain TypeScript, no framework (docs/ui.md says why). The Tauri web view is a modern
// WebKit/WebView2/Chromium, so ES2022 output needs no polyfills.
export default defineConfig({
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true, sourcemap: false },
  test: { include: ["tests/unit/**/*.test.ts"] },
});
