// Ask the kernel for a free loopback port, then release it for the caller.
export async function freePort(hostname = "127.0.0.1"): Promise<number> {
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
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
