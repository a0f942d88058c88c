// Builds the client SDK for the browser on first request (Bun.build, ~50 ms), so the demo page
// runs the same SDK people import, without a build step before starting the gateway.

const ENTRY = new URL("../client/index.ts", import.meta.url).pathname;

/** Returns a loader that builds once and then serves the cached text. */
export function sdkBundle(): () => Promise<string> {
  let built: Promise<string> | null = null;
  return () => {
    built ??= Bun.build({ entrypoints: [ENTRY], target: "browser", format: "esm" }).then(async (r) => {
      if (!r.success || !r.outputs[0]) throw new Error(r.logs.map(String).join("\n") || "build failed");
      return r.outputs[0].text();
    });
    // A failed build is retried on the next request instead of being cached.
    return built.catch((err) => {
      built = null;
      throw err;
    });
  };
}
