import { test } from "node:test";
import assert from "node:assert/strict";
import { main, registerCommand } from "./main.js";

test("unknown commands fail with status 2, known ones get their arguments", async () => {
  const seen: string[][] = [];
  registerCommand("probe", async () => ({
    summary: "test command",
    run: async (args) => {
      seen.push(args);
      return 7;
    },
  }));
  const origError = console.error;
  console.error = () => {};
  try {
    assert.equal(await main(["no-such-command"]), 2);
  } finally {
    console.error = origError;
  }
  assert.equal(await main(["probe", "a", "b"]), 7);
  assert.deepEqual(seen, [["a", "b"]]);
});
