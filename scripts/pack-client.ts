// `bun run pack:client`: builds @wsgate/client and packs it with npm into build/; the tarball's
// absolute path is the last line printed, so scripts can do `tgz=$(bun run pack:client | tail -1)`.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { buildClient } from "./build-client.ts";

const ROOT = new URL("..", import.meta.url).pathname;

export async function packClient(dest = join(ROOT, "build")): Promise<{ tarball: string; minGzipBytes: number; minBytes: number }> {
  const built = await buildClient();
  mkdirSync(dest, { recursive: true });
  const npm = Bun.spawnSync(["npm", "pack", "--json", "--pack-destination", dest], { cwd: built.dir, stdout: "pipe", stderr: "pipe" });
  if (npm.exitCode !== 0) throw new Error(`npm pack failed: ${npm.stderr.toString()}`);
  const [info] = JSON.parse(npm.stdout.toString()) as { filename: string }[];
  return { tarball: join(dest, info!.filename), minBytes: built.minBytes, minGzipBytes: built.minGzipBytes };
}

if (import.meta.main) {
  const r = await packClient();
  console.log(`@wsgate/client: ${(r.minBytes / 1024).toFixed(1)} KiB minified, ${(r.minGzipBytes / 1024).toFixed(1)} KiB min+gzip`);
  console.log(r.tarball);
}
