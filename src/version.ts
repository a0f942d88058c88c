// Which build this process runs: the package version plus a build id, shown on /health, /stats,
// /v1/gateways, the dashboard and wsgate_build_info, so a rolling deploy can be watched machine by machine.
import pkg from "../package.json";

export interface BuildInfo {
  version: string;
  build: string;
}

/** The checkout's commit, when the process runs from one (a container image has no .git: "unknown"). */
function gitCommit(cwd: string): string | undefined {
  try {
    const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd, stdout: "pipe", stderr: "ignore" });
    const sha = r.stdout.toString().trim();
    return r.exitCode === 0 && /^[0-9a-f]{7,40}$/.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

/** `build` from WSGATE_BUILD (set by the image build), else git, else "unknown". Read once at start. */
export function buildInfo(build: string | undefined, cwd = new URL("..", import.meta.url).pathname): BuildInfo {
  return { version: pkg.version, build: build ?? gitCommit(cwd) ?? "unknown" };
}
