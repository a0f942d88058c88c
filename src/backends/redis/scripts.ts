// Lua scripts are plain .lua files, read once and registered with ioredis, which runs them by EVALSHA
// (falling back to EVAL once after a NOSCRIPT, e.g. when Redis restarted empty).
import { readFileSync } from "node:fs";
import type Redis from "ioredis";

// null: a variable number of keys, passed first (the append script takes a batch of recipients).
const SCRIPTS = {
  wsgAppend: null,
  wsgReplay: 2,
  wsgLease: 2,
  wsgConnect: 3,
  wsgDisconnect: 2,
  wsgRoomJoin: 3,
  wsgRoomLeave: 2,
  wsgReapClaim: 1,
} as const;

const FILES: Record<keyof typeof SCRIPTS, string> = {
  wsgAppend: "append.lua",
  wsgReplay: "replay.lua",
  wsgLease: "lease.lua",
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

export function defineScripts(client: Redis): Scripted {
  for (const [name, numberOfKeys] of Object.entries(SCRIPTS)) {
    const lua = readFileSync(new URL(`./lua/${FILES[name as keyof typeof SCRIPTS]}`, import.meta.url), "utf8");
    client.defineCommand(name, numberOfKeys === null ? { lua } : { numberOfKeys, lua });
  }
  return client as Scripted;
}
