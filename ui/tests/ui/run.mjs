// Runs the fast UI tests (node's test runner; Playwright drives Debian's Chromium).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const dir = fileURLToPath(new URL(".", import.meta.url));
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", `${dir}app.test.mjs`], { stdio: "inherit" });
process.exit(r.status ?? 1);
