// What Fly.io's proxy does for the rolling-deploy test: new TCP connections go round-robin to backends
// whose last health check (GET /ready) passed; checks run every `intervalMs`, so a backend that starts
// failing keeps receiving connections until its next check. Every routing decision is logged.
import type { Socket, TCPSocketListener } from "bun";

export interface Backend {
  name: string;
  port: number;
}

export interface Routed {
  t: number;
  backend: string;
}

interface Link {
  upstream: Socket<Link> | null;
  client: Socket<Link>;
  /** Client bytes that arrived before the upstream connection was open. */
  early: Uint8Array[];
}

export interface FlyProxy {
  port: number;
  routed: Routed[];
  /** Runs one round of checks now and restarts the schedule from now, so the next is intervalMs away. */
  checkNow(): Promise<void>;
  healthy(): string[];
  close(): void;
}

export async function startFlyProxy(backends: Backend[], intervalMs: number): Promise<FlyProxy> {
  const healthy = new Set<string>();
  const routed: Routed[] = [];
  let rr = 0;

  async function checkRound() {
    await Promise.all(
      backends.map(async (b) => {
        let ok = false;
        try {
          ok = (await fetch(`http://127.0.0.1:${b.port}/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
        } catch {}
        if (ok) healthy.add(b.name);
        else healthy.delete(b.name);
      }),
    );
  }
  let timer: ReturnType<typeof setInterval> | undefined;
  async function checkNow() {
    clearInterval(timer);
    timer = setInterval(() => void checkRound(), intervalMs);
    await checkRound();
  }
  await checkNow();

  const pick = (): Backend | undefined => {
    const live = backends.filter((b) => healthy.has(b.name));
    return live.length ? live[rr++ % live.length] : undefined;
  };

  const listener: TCPSocketListener<Link> = Bun.listen<Link>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(client) {
        const link: Link = { upstream: null, client, early: [] };
        client.data = link;
        const b = pick();
        if (!b) return void client.end();
        routed.push({ t: Date.now(), backend: b.name });
        void Bun.connect<Link>({
          hostname: "127.0.0.1",
          port: b.port,
          data: link,
          socket: {
            open(up) {
              link.upstream = up;
              for (const chunk of link.early.splice(0)) up.write(chunk);
            },
            data(_up, chunk) {
              link.client.write(chunk);
            },
            close() {
              link.client.end();
            },
            error() {
              link.client.end();
            },
          },
        }).catch(() => client.end());
      },
      data(client, chunk) {
        const link = client.data;
        if (link.upstream) link.upstream.write(chunk);
        else link.early.push(new Uint8Array(chunk));
      },
      close(client) {
        client.data?.upstream?.end();
      },
      error(client) {
        client.data?.upstream?.end();
      },
    },
  });

  return {
    port: listener.port,
    routed,
    checkNow,
    healthy: () => [...healthy],
    close() {
      clearInterval(timer);
      listener.stop(true);
    },
  };
}
