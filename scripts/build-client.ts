// Builds the @wsgate/client package in src/client: dist/index.js (one ESM file, everything it
// imports bundled in, so the package has no runtime dependencies) and dist/types (declarations
// from tsc). `bun run build:client`; `bun run pack:client` builds and packs it.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
export const CLIENT_DIR = join(ROOT, "src/client");
const DIST = join(CLIENT_DIR, "dist");

export interface BuildResult {
  /** The package folder (src/client). */
  dir: string;
  /** Bytes of the minified bundle and of that gzipped: what a browser downloads. */
  minBytes: number;
  minGzipBytes: number;
}

/** Relative `.ts` specifiers in emitted declarations become `.js`, which every resolver understands. */
function rewriteDeclarationImports(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) rewriteDeclarationImports(path);
    else if (name.endsWith(".d.ts")) {
      const text = readFileSync(path, "utf8");
      const fixed = text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+?)\.ts(["'])/g, "$1$2.js$3");
      if (fixed !== text) writeFileSync(path, fixed);
    }
  }
}

async function bundle(minify: boolean): Promise<string> {
  const r = await Bun.build({ entrypoints: [join(CLIENT_DIR, "index.ts")], target: "browser", format: "esm", minify });
  if (!r.success || !r.outputs[0]) throw new Error(r.logs.map(String).join("\n") || "bundle failed");
  return r.outputs[0].text();
}

export async function buildClient(): Promise<BuildResult> {
  rmSync(DIST, { recursive: true, force: true });
  // Readable (unminified) code in the package: consumers' bundlers minify it anyway.
  mkdirSync(DIST, { recursive: true });
  writeFileSync(join(DIST, "index.js"), await bundle(false));
  const tsc = Bun.spawnSync([join(ROOT, "node_modules/.bin/tsc"), "-p", join(CLIENT_DIR, "tsconfig.build.json")], { stdout: "pipe", stderr: "pipe" });
  if (tsc.exitCode !== 0) throw new Error(`tsc (declarations) failed:\n${tsc.stdout.toString()}${tsc.stderr.toString()}`);
  rewriteDeclarationImports(join(DIST, "types"));
  copyFileSync(join(ROOT, "LICENSE"), join(CLIENT_DIR, "LICENSE"));
  const min = await bundle(true);
  return { dir: CLIENT_DIR, minBytes: Buffer.byteLength(min), minGzipBytes: Bun.gzipSync(Buffer.from(min), { level: 9 }).length };
}

if (import.meta.main) {
  const r = await buildClient();
  console.log(`built ${r.dir}/dist: ${(r.minBytes / 1024).toFixed(1)} KiB minified, ${(r.minGzipBytes / 1024).toFixed(1)} KiB min+gzip`);
}
