// Bundles the editor (src/main.ts -> dist/) or, with --tests, the unit tests (test/*.test.ts -> dist-test/).
// esbuild only bundles; type checking is `tsc --noEmit` (npm run typecheck).
import { build } from "esbuild";
import { cpSync, mkdirSync, readdirSync, rmSync } from "node:fs";

const tests = process.argv.includes("--tests");

if (tests) {
  rmSync("dist-test", { recursive: true, force: true });
  const entryPoints = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await build({
    entryPoints,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outdir: "dist-test",
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
} else {
  rmSync("dist", { recursive: true, force: true });
  mkdirSync("dist", { recursive: true });
  await build({
    entryPoints: ["src/main.ts"],
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: true,
    outfile: "dist/app.js",
    loader: { ".css": "css" },
    logLevel: "warning",
  });
  cpSync("static", "dist", { recursive: true });
}
