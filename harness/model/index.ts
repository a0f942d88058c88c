// Entry point for the model test and the soak: one world, rounds with derived seeds, violations collected.
import type { FaultKind } from "./world.ts";
import { World } from "./world.ts";
import { ModelRound, type RoundResult } from "./run.ts";

export const ALL_FAULTS: FaultKind[] = ["kill9", "drain", "redis-restart", "redis-stall"];

export interface ModelConfig {
  chaosMs: number;
  users?: number;
  rooms?: number;
  faults?: FaultKind[];
  faultEveryMs?: number;
  log?: (line: string) => void;
}

export const MODEL_SECRET = "test-secret-that-is-long-enough-for-hs256";

/** Starts 3 gateways on one Redis; call runRound per seed, then stop. */
export class ModelHarness {
  readonly world: World;
  private readonly startOffsets = new Map<string, string>();

  /** presenceTtlMs 1500 (CI): a 2 s Redis stall outlasts every lease; the soak may pick a longer one. */
  constructor(o: { presenceTtlMs?: number } = {}) {
    this.world = new World({ gateways: 3, heartbeatMs: 500, presenceTtlMs: o.presenceTtlMs ?? 1500 });
  }

  async start() {
    await this.world.start();
  }

  async runRound(seed: number, cfg: ModelConfig): Promise<RoundResult> {
    const round = new ModelRound(
      this.world,
      {
        seed,
        chaosMs: cfg.chaosMs,
        users: cfg.users ?? 30,
        rooms: cfg.rooms ?? 8,
        faults: cfg.faults ?? ALL_FAULTS,
        faultEveryMs: cfg.faultEveryMs ?? 3000,
        secret: MODEL_SECRET,
        log: cfg.log,
      },
      this.startOffsets,
    );
    return round.run();
  }

  async stop() {
    await this.world.stop();
  }
}
