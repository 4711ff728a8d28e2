#!/usr/bin/env node
// Entry point of the `viridian` command: loads the compiled CLI (run `npm run build` first).
import { main } from "../dist/src/cli/main.js";

process.exitCode = await main(process.argv.slice(2));
