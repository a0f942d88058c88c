// Result rows (wsgate figure, floor figure, ratio, target) and the printed table.
export interface Row {
  scenario: string;
  metric: string;
  unit: string;
  wsgate: number | null;
  floor: number | null;
  /** Human-readable target, e.g. "≤ 3072" or "≤ 1.5× floor". */
  target?: string;
  /** Whether the target is met; null when not judged (no target, or a side missing). */
  ok?: boolean | null;
}

export function ratio(r: Row): number | null {
  if (r.wsgate === null || r.floor === null || !Number.isFinite(r.wsgate) || !Number.isFinite(r.floor) || r.floor === 0) return null;
  return r.wsgate / r.floor;
}

export function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 100000) return Math.round(v).toLocaleString("en-US");
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

export function table(rows: Row[]): string {
  const head = ["scenario", "metric", "unit", "wsgate", "floor", "ratio", "target", "ok"];
  const body = rows.map((r) => {
    const q = ratio(r);
    return [r.scenario, r.metric, r.unit, fmt(r.wsgate), fmt(r.floor), q === null ? "–" : q.toFixed(2) + "×", r.target ?? "", r.ok === true ? "yes" : r.ok === false ? "NO" : ""];
  });
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i >= 3 && i <= 5 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join(" | ") + " |";
  return [line(head), "|" + w.map((n, i) => (i >= 3 && i <= 5 ? "-".repeat(n + 1) + ":" : "-".repeat(n + 2))).join("|") + "|", ...body.map(line)].join("\n");
}
