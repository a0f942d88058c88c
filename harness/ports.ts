// Ask the kernel for a free loopback port, then release it for the caller.
export async function freePort(hostname = "127.0.0.1"): Promise<number> {
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
