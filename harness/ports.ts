// A free port for a server a test is about to start, taken below the kernel's ephemeral range (32768–60999 on
// Linux): a port the kernel hands out (port 0) is free now, but an outgoing connection may take it as its source
// port before the server binds, and the server then dies with EADDRINUSE (seen with 20k load-test sockets open).
const FIRST = 20000;
const LAST = 32700;

/**
 * Ports this process handed out lately. Tests start several servers at once (Promise.all), each asking for a
 * port before any of them binds, so a check that the port is free cannot see a sibling's choice: two of seven
 * gateways got the same port once (EADDRINUSE, a whole file's tests lost). Oldest forgotten first.
 */
const given = new Set<number>();
const REMEMBER = 4000;

function handOut(port: number): number {
  given.add(port);
  if (given.size > REMEMBER) given.delete(given.values().next().value!);
  return port;
}

export async function freePort(hostname = "127.0.0.1"): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = FIRST + Math.floor(Math.random() * (LAST - FIRST));
    if (given.has(port)) continue;
    // Free on every address (servers here bind one loopback address or all of them), and on the one asked for.
    if (canListen("0.0.0.0", port) && canListen(hostname, port)) return handOut(port);
  }
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return handOut(port);
}

function canListen(hostname: string, port: number): boolean {
  try {
    Bun.listen({ hostname, port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/**
 * Keeps a port taken while its server is down (between a kill and a restart on the same port): on a shared
 * machine another test would otherwise pick it as "free", and a Sentinel or cluster that knew the port
 * would then reconfigure that stranger's server. Connections are accepted and closed at once, like a
 * server that is not there. Returns the release.
 */
export function holdPort(port: number, hostname = "127.0.0.1"): () => void {
  const s = Bun.listen({ hostname, port, socket: { open(sock) { sock.end(); }, data() {} } });
  return () => s.stop(true);
}
