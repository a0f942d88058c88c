// A WebSocket stand-in for SDK tests with no gateway: each connection, by script, fails (1006), closes with a
// code, answers with a welcome, or answers with a welcome, some frames, and then a close.
export type FakeBehaviour = "fail" | "welcome" | { close: number } | { welcomeThen: string[]; close: number };

const WELCOME = JSON.stringify({ type: "welcome", user: "u", conn: "c", gateway: "g", region: "r", heartbeat: 60000 });

export function fakeSockets(behaviour: (url: string, n: number) => FakeBehaviour) {
  const urls: string[] = [];
  class FakeWs {
    readyState = 0;
    onopen: ((ev: any) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: { code: number; reason: string }) => void) | null = null;
    onerror: ((ev: any) => void) | null = null;
    constructor(url: string) {
      urls.push(url);
      const b = behaviour(url, urls.length);
      setTimeout(() => {
        if (b === "welcome" || (typeof b === "object" && "welcomeThen" in b)) {
          this.readyState = 1;
          this.onmessage?.({ data: WELCOME });
          if (b === "welcome") return;
          for (const data of b.welcomeThen) this.onmessage?.({ data });
        }
        this.readyState = 3;
        this.onclose?.(b === "fail" ? { code: 1006, reason: "" } : { code: (b as { close: number }).close, reason: "" });
      }, 1);
    }
    send(_: string) {}
    close() {
      this.readyState = 3;
    }
  }
  return { urls, WebSocket: FakeWs as any };
}
