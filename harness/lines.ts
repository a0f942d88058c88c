// Line-oriented reading of a child's output stream (JSON events, logs).

/** Calls onLine for every line of a byte stream until it ends (the last line may lack a newline). */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let rest = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += dec.decode(value, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch {
    // The child went away mid-read; whatever arrived has been delivered.
  }
  if (rest) onLine(rest);
}
