// Builds the dashboard into ../dist, which is committed and embedded in the
// vigil binary with go:embed. Run with `npm ci && npm run build`.
import * as esbuild from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

const out = new URL("../dist/", import.meta.url).pathname;
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: "src/main.js" },
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  outdir: out,
  legalComments: "linked",
  logLevel: "info",
});
await copyFile("src/index.html", out + "index.html");
await copyFile("src/favicon.svg", out + "favicon.svg");
// The bundle includes uPlot (MIT); ship its licence beside it.
await copyFile("node_modules/uplot/LICENSE", out + "uPlot.LICENSE.txt");
