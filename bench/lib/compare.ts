// `--compare REV`: the "floor" column becomes wsgate itself at an earlier commit, run from a detached git
// worktree, so a refactor is measured before/after in one run, step by step against the same background load.
import { existsSync } from "node:fs";
import os from "node:os";
import { ROOT } from "./procs.ts";

export interface Compare {
  rev: string;
  dir: string;
}

async function run(cmd: string[], cwd: string): Promise<string> {
  const p = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} failed (${code}): ${err.trim() || out.trim()}`);
  return out.trim();
}

/** A worktree of `rev` with its dependencies installed, reused when it already exists. */
export async function prepareCompare(rev: string): Promise<Compare> {
  const sha = await run(["git", "rev-parse", "--short", `${rev}^{commit}`], ROOT);
  const dir = `${os.tmpdir()}/wsgate-compare-${sha}`;
  if (!existsSync(`${dir}/src/index.ts`)) await run(["git", "worktree", "add", "--force", "--detach", dir, sha], ROOT);
  await run(["bun", "install", "--frozen-lockfile"], dir);
  return { rev: sha, dir };
}
