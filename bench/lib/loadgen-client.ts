// The orchestrator's handle on one bench/loadgen.ts process: JSON commands down stdin, JSON
// replies up stdout, matched by id.
import { spawn, type Subprocess } from "bun";
import { ROOT, readText } from "./procs.ts";

export class LoadGen {
  private seq = 0;
  private waiting = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();
  private stderr = "";
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;

  constructor(readonly name: string) {
    this.proc = spawn(["bun", "bench/loadgen.ts"], {
      cwd: ROOT,
      env: { ...process.env },
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    let buf = "";
    void readText(this.proc.stdout, (s) => { buf = this.onReplies(buf + s); });
    void readText(this.proc.stderr, (s) => { this.stderr = (this.stderr + s).slice(-5000); });
    void this.proc.exited.then((code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`${name} exited ${code}: ${this.stderr}`));
      this.waiting.clear();
    });
  }

  get pid() { return this.proc.pid; }

  /** Settles the requests whose replies are complete in `buf`; returns the unfinished tail. */
  private onReplies(buf: string): string {
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      let r: any;
      try { r = JSON.parse(line); } catch { continue; }
      const w = this.waiting.get(r.id);
      if (!w) continue;
      this.waiting.delete(r.id);
      if (r.error) w.reject(new Error(`${this.name}: ${r.error}`));
      else w.resolve(r);
    }
    return buf;
  }

  request<T = any>(cmd: Record<string, unknown>, timeoutMs = 300_000): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => { this.waiting.delete(id); reject(new Error(`${this.name}: ${cmd.cmd} timed out`)); }, timeoutMs);
      this.waiting.set(id, {
        resolve: (r) => { clearTimeout(t); resolve(r); },
        reject: (e) => { clearTimeout(t); reject(e); },
      });
      this.proc.stdin.write(JSON.stringify({ ...cmd, id }) + "\n");
      this.proc.stdin.flush();
    });
  }

  async exit(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    try { this.proc.stdin.end(); } catch {}
    const t = setTimeout(() => { try { this.proc.kill("SIGKILL"); } catch {} }, 5000);
    await this.proc.exited;
    clearTimeout(t);
  }
}
