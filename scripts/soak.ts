// bun run soak --minutes N [--seed S] [--chaos-ms MS] [--ttl-ms T] [--faults a,b]: the model-checked random
// test (harness/model) for longer, with WSGATE_PRESENCE_TTL_MS=T (default 1500) and the given fault kinds
// (default: ALL_FAULTS; gateway-stall, a gateway SIGSTOPped past its lease as CPU starvation does, is opt-in).
// Rounds of random operations and faults, each followed by quiescence and the full check, until N minutes
// have passed. Prints each round, then a JSON summary line; exits 1 if any violation was found.
import { ALL_FAULTS, ModelHarness } from "../harness/model/index.ts";
import type { FaultKind } from "../harness/model/world.ts";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const minutes = Number(arg("minutes") ?? 5);
const seed0 = Number(arg("seed") ?? Math.floor(Math.random() * 1e9));
const chaosMs = Number(arg("chaos-ms") ?? 30_000);
const ttlMs = Number(arg("ttl-ms") ?? 1500);
const KINDS: FaultKind[] = [...ALL_FAULTS, "gateway-stall"];
const faultKinds = (arg("faults")?.split(",") ?? ALL_FAULTS) as FaultKind[];
if (!(minutes > 0) || !Number.isInteger(seed0) || !(chaosMs > 0) || !(ttlMs >= 200) || !faultKinds.every((f) => KINDS.includes(f))) {
  console.error(`usage: bun run soak --minutes N [--seed S] [--chaos-ms MS] [--ttl-ms PRESENCE_TTL] [--faults ${KINDS.join(",")}]`);
  process.exit(2);
}

const h = new ModelHarness({ presenceTtlMs: ttlMs });
await h.start();
const started = Date.now();
const until = started + minutes * 60_000;
let ops = 0;
let faults = 0;
let rounds = 0;
let rssMax = 0;
const violations: string[] = [];
const failedSeeds: number[] = [];
try {
  for (let seed = seed0; Date.now() < until && rounds < 100_000; seed++) {
    const r = await h.runRound(seed, { chaosMs: Math.min(chaosMs, Math.max(5000, until - Date.now())), faults: faultKinds, log: process.env.FUZZ_VERBOSE ? console.log : undefined });
    rounds++;
    ops += r.ops;
    faults += r.faults;
    rssMax = Math.max(rssMax, r.rssMax);
    if (r.violations.length > 0) {
      failedSeeds.push(seed);
      violations.push(...r.violations);
    }
    console.log(
      `round ${rounds} seed ${seed}: ${r.ops} ops, ${r.faults} faults, ${r.violations.length} violations, gateway rss max ${Math.round(r.rssMax / 1048576)} MB`,
    );
    for (const v of r.violations.slice(0, 20)) console.log(`  ${v}`);
    for (const n of r.notes) console.log(`  note: ${n}`);
  }
} finally {
  await h.stop();
}
const summary = { ttlMs, faultKinds, minutes: Math.round((Date.now() - started) / 600) / 100, seed: seed0, rounds, ops, faults, violations: violations.length, failedSeeds, rssMaxMB: Math.round(rssMax / 1048576) };
console.log(JSON.stringify(summary));
process.exit(violations.length > 0 ? 1 : 0);
