// Builds the web UI (src/web/) into dist/web/: type-checks it with its own tsconfig (DOM, no Node), bundles
// main.ts and what it imports (src/api, xterm.js, uPlot) with esbuild into one ES module, and copies the page, its
// styles, xterm's and uPlot's styles. `viridian serve` serves exactly the files written here (src/service/web-ui.ts).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { build } from "esbuild";

const out = "dist/web";
const tsc = spawnSync("npx", ["tsc", "-p", "src/web/tsconfig.json"], { stdio: "inherit" });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: ["src/web/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  platform: "browser",
  minify: true,
  sourcemap: true,
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
const require = createRequire(import.meta.url);
const xtermCss = join(dirname(require.resolve("@xterm/xterm/package.json")), "css/xterm.css");
copyFileSync(xtermCss, join(out, "xterm.css"));
const uplotCss = join(dirname(require.resolve("uplot/package.json")), "dist/uPlot.min.css");
copyFileSync(uplotCss, join(out, "uplot.css"));
copyFileSync("src/web/index.html", join(out, "index.html"));
copyFileSync("src/web/app.css", join(out, "app.css"));
