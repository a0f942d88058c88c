#!/usr/bin/env bun
// The wsgate command line; the commands live in src/client/cli (kept out of the SDK entry point).
import { main } from "../src/client/cli/main.ts";

process.exit(await main(process.argv.slice(2)));
