// Lua scripts are plain .lua files, read once and registered with ioredis, which runs them by EVALSHA
// (falling back to EVAL once after a NOSCRIPT, e.g. when Redis restarted empty).
import { readFileSync } from "node:fs";
import type Redis from "ioredis";

// null: a variable number of keys, passed first (the append script takes a batch of recipients).
export const SCRIPTS = {
  wsgAppend: null,
  wsgReplay: 1,
  wsgLease: 1,
  wsgIndex: 2,
  wsgConnect: 1,
  wsgDisconnect: 1,
  wsgRoomJoin: 1,
  wsgRoomLeave: 1,
  wsgReapClaim: 2,
} as const;

const FILES: Record<keyof typeof SCRIPTS, string> = {
  wsgAppend: "append.lua",
  wsgReplay: "replay.lua",
  wsgLease: "lease.lua",
  wsgIndex: "index.lua",
  wsgConnect: "connect.lua",
  wsgDisconnect: "disconnect.lua",
  wsgRoomJoin: "room_join.lua",
  wsgRoomLeave: "room_leave.lua",
  wsgReapClaim: "reap_claim.lua",
};

type Arg = string | number;
type Call = (...args: Arg[]) => Promise<unknown>;
export type ScriptCommands = { [K in keyof typeof SCRIPTS]: Call };
export type Scripted = Redis & ScriptCommands;
export type ScriptedPipeline = ReturnType<Redis["pipeline"]> & { [K in keyof typeof SCRIPTS]: (...args: Arg[]) => ScriptedPipeline };

const readLua = (file: string) => readFileSync(new URL(`./lua/${file}`, import.meta.url), "utf8");

/** A script's text with each `-- #include <file>` line replaced by that file (shared helpers; a shebang line stays first). */
export function scriptSource(name: keyof typeof SCRIPTS): string {
  return readLua(FILES[name]).replace(/^-- #include ([\w.]+)$/gm, (_, file: string) => readLua(file));
}

export function defineScripts(client: Redis): Scripted {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    const lua = scriptSource(name as keyof typeof SCRIPTS);
    client.defineCommand(name, numberOfKeys === null ? { lua } : { numberOfKeys, lua });
  }
  return client as Scripted;
}
