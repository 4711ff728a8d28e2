#!/usr/bin/env node
// Entry point of the `viridian` command (run `npm run build` first). `serve` and `worker` are processes of
// their own tiers and are dispatched here, so the CLI (a client of the API) never imports the service.
const [verb, ...rest] = process.argv.slice(2);
if (verb === "serve") {
  const { serve } = await import("../dist/src/service/main.js");
  process.exitCode = await serve(rest);
  process.exit();
} else if (verb === "worker") {
  const { workerMain } = await import("../dist/src/worker/worker-main.js");
  process.exitCode = await workerMain(rest);
} else {
  const { main } = await import("../dist/src/cli/main.js");
  process.exitCode = await main(process.argv.slice(2));
}
