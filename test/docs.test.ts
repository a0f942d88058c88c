// docs/PROTOCOL.md is the reference operators deploy from: every variable the config reads must be in it.
import { expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";

const ROOT = new URL("..", import.meta.url).pathname;

/** The config modules: src/config.ts and its siblings src/config-*.ts, plus src/config/*.ts should it become a folder. */
function configSources(): string[] {
  const files = readdirSync(`${ROOT}src`)
    .filter((f) => /^config(-[a-z0-9-]+)?\.ts$/.test(f))
    .map((f) => `${ROOT}src/${f}`);
  const dir = `${ROOT}src/config`;
  if (existsSync(dir)) for (const f of readdirSync(dir)) if (f.endsWith(".ts")) files.push(`${dir}/${f}`);
  return files.filter(existsSync).map((f) => readFileSync(f, "utf8"));
}

/** Names read from the environment: schema keys (`NAME: z…`), `env.NAME` and `env["NAME"]`. */
function envNamesIn(source: string): Set<string> {
  const names = new Set<string>();
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  for (const m of code.matchAll(/^\s*([A-Z][A-Z0-9_]*)\s*:/gm)) names.add(m[1]!);
  for (const m of code.matchAll(/\benv\??\.([A-Z][A-Z0-9_]*)\b/g)) names.add(m[1]!);
  for (const m of code.matchAll(/\benv\??\.?\[\s*["'`]([A-Z][A-Z0-9_]*)["'`]\s*\]/g)) names.add(m[1]!);
  return names;
}

/** Variables named in the first cell of a table row: | `NAME` | … */
function documented(md: string): Set<string> {
  const names = new Set<string>();
  for (const m of md.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)) names.add(m[1]!);
  return names;
}

test("the parser finds schema keys and env reads", () => {
  const names = envNamesIn('const s = z.object({\n  PORT: int(),\n  // OLD_NAME: gone\n  REDIS_URL: url,\n});\nenv.FOO_BAR; env["BAZ"];');
  expect([...names].sort()).toEqual(["BAZ", "FOO_BAR", "PORT", "REDIS_URL"]);
});

test("every environment variable read by src/config.ts has a row in docs/PROTOCOL.md", () => {
  const read = new Set<string>();
  for (const src of configSources()) for (const n of envNamesIn(src)) read.add(n);
  expect(read.size).toBeGreaterThan(10); // the parser still sees the schema
  expect(read.has("PORT")).toBe(true);
  const docs = documented(readFileSync(`${ROOT}docs/PROTOCOL.md`, "utf8"));
  const missing = [...read].filter((n) => !docs.has(n)).sort();
  expect(missing).toEqual([]);
});

test("the README links the in-repository reference, not a file outside the clone", () => {
  const readme = readFileSync(`${ROOT}README.md`, "utf8");
  expect(readme).toContain("(docs/PROTOCOL.md)");
  expect(readme).not.toContain("../shared/");
});

test("a LICENSE is in the repository", () => {
  expect(readFileSync(`${ROOT}LICENSE`, "utf8")).toMatch(/MIT License/);
});
