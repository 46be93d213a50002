// Builds the browser demo into stack/internal/play/dist, which the Go binary
// embeds (go:embed) and `realmstream run` serves at /play/. The output is
// committed; `make test-ts` rebuilds it and fails when the commit is stale.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const out = join(root, "../../stack/internal/play/dist");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, "demo/app.ts")],
  outfile: join(out, "app.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "none",
  // The SDK loads `ws` only where there is no global WebSocket (Node 20).
  external: ["ws"],
  logLevel: "warning",
});
for (const f of ["index.html", "app.css"]) copyFileSync(join(root, "demo", f), join(out, f));
console.log(`demo built into ${out}`);
