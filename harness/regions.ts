// Regions with distance, as a plan: which gateway lives where, which Redis it talks to, and the
// one-way delays on each path. Pure (no processes): the cluster script, the front door, the bench
// and the tests all read the same plan.

/** Round-trip times between Fly.io regions, ms: public ping tables, rounded (late 2026). */
export const FLY_RTT_MS: Record<string, number> = {
  "ord-ams": 90, "ord-sin": 220, "ams-sin": 160,
};

export const DEFAULT_REGIONS = ["ord", "ams", "sin"] as const;

export class RttTable {
  private readonly ms = new Map<string, number>();
  constructor(readonly regions: string[], pairs: Record<string, number> = {}) {
    for (const [k, v] of Object.entries(pairs)) {
      const [a, b] = k.split("-");
      this.ms.set(RttTable.key(a!, b!), v);
    }
  }
  private static key(a: string, b: string) { return a < b ? `${a}-${b}` : `${b}-${a}`; }
  /** Round trip between two regions; 0 within a region. */
  rtt(a: string, b: string): number {
    return a === b ? 0 : (this.ms.get(RttTable.key(a, b)) ?? 0);
  }
  oneWay(a: string, b: string): number { return this.rtt(a, b) / 2; }
  /** Regions ordered by distance from `from` (itself first); ties keep the --regions order. */
  byDistance(from: string): string[] {
    return [...this.regions].sort((x, y) => this.rtt(from, x) - this.rtt(from, y) || this.regions.indexOf(x) - this.regions.indexOf(y));
  }
  toJSON(): Record<string, number> { return Object.fromEntries(this.ms); }
}

export class RegionArgError extends Error {}

const REGION_RE = /^[a-z][a-z0-9]{1,9}$/;

export function parseRegions(v: string): string[] {
  const rs = v.split(",").map((s) => s.trim()).filter(Boolean);
  if (rs.length === 0 || rs.length > 10) throw new RegionArgError("--regions needs 1 to 10 comma-separated region names");
  for (const r of rs) if (!REGION_RE.test(r)) throw new RegionArgError(`--regions: "${r}" is not a region name (2-10 of [a-z0-9], a letter first)`);
  if (new Set(rs).size !== rs.length) throw new RegionArgError("--regions: a region is listed twice");
  return rs;
}

/** "ord-ams=90,ord-sin=220" → pairs; every pair of `regions` must be given exactly once. */
export function parseRtt(v: string, regions: string[]): RttTable {
  const pairs: Record<string, number> = {};
  const seen = new Set<string>();
  for (const part of v.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z0-9]+)-([a-z0-9]+)=(\d+(?:\.\d+)?)$/.exec(part);
    if (!m) throw new RegionArgError(`--rtt: "${part}" is not a-b=ms`);
    const [, a, b, ms] = m as unknown as [string, string, string, string];
    for (const r of [a, b]) if (!regions.includes(r)) throw new RegionArgError(`--rtt: ${r} is not in --regions (${regions.join(",")})`);
    if (a === b) throw new RegionArgError(`--rtt: ${part} pairs a region with itself`);
    const key = a < b ? `${a}-${b}` : `${b}-${a}`;
    if (seen.has(key)) throw new RegionArgError(`--rtt: ${key} is given twice`);
    seen.add(key);
    pairs[key] = Number(ms);
  }
  for (let i = 0; i < regions.length; i++)
    for (let j = i + 1; j < regions.length; j++) {
      const a = regions[i]!, b = regions[j]!;
      if (!seen.has(a < b ? `${a}-${b}` : `${b}-${a}`)) throw new RegionArgError(`--rtt: no round trip given for ${a}-${b}`);
    }
  return new RttTable(regions, pairs);
}

export interface GatewaySpec {
  id: string;
  region: string;
  port: number;
  /** Where subscriptions and presence reads go: the primary (primary region) or the region's replica. */
  readsFrom: "primary" | "replica";
  /** One-way delays in force on this gateway's paths, ms. */
  delays: { toPrimaryMs: number; fromPrimaryMs: number; replicaFeedMs: number };
}

export interface RegionPlan {
  regions: string[];
  primaryRegion: string;
  rtt: RttTable;
  gateways: GatewaySpec[];
  /** Regions that get a replica (every one but the primary's). */
  replicaRegions: string[];
}

export function planRegions(regions: string[], rtt: RttTable, ports: number[], perRegion: number): RegionPlan {
  if (ports.length !== regions.length * perRegion)
    throw new RegionArgError(`${regions.length} regions × ${perRegion} gateways need ${regions.length * perRegion} ports, got ${ports.length}`);
  const primaryRegion = regions[0]!;
  const gateways: GatewaySpec[] = [];
  regions.forEach((region, r) => {
    for (let i = 0; i < perRegion; i++) {
      const oneWay = rtt.oneWay(region, primaryRegion);
      gateways.push({
        id: `${region}-${i + 1}`,
        region,
        port: ports[r * perRegion + i]!,
        readsFrom: region === primaryRegion ? "primary" : "replica",
        delays: { toPrimaryMs: oneWay, fromPrimaryMs: oneWay, replicaFeedMs: oneWay },
      });
    }
  });
  return { regions, primaryRegion, rtt, gateways, replicaRegions: regions.slice(1) };
}

/**
 * The least time a direct message can take from a sender in region `from` to a recipient in `to`:
 * the sender's gateway writes to the primary, and the recipient's gateway hears it on its
 * subscription (the primary itself, or its region's replica fed from the primary).
 */
export function deliveryFloorMs(plan: Pick<RegionPlan, "rtt" | "primaryRegion">, from: string, to: string): number {
  return plan.rtt.oneWay(from, plan.primaryRegion) + plan.rtt.oneWay(plan.primaryRegion, to);
}
