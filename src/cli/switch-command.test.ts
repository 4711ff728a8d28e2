import { test } from "node:test";
import assert from "node:assert/strict";
import { command } from "./switch-command.js";

async function quietly(args: string[]): Promise<{ status: number; err: string }> {
  const orig = console.error;
  let err = "";
  console.error = (...a: unknown[]) => void (err += `${a.join(" ")}\n`);
  try {
    return { status: await command.run(args), err };
  } finally {
    console.error = orig;
  }
}

test("switch: usage errors exit 2, bad names and rules exit 1 with a message, nothing is started", async () => {
  assert.equal(
    (await quietly(["create", "x", "--hostfwd", "tcp::2222-:22"])).status,
    2,
    "--hostfwd without --nat",
  );
  assert.equal((await quietly(["create"])).status, 2);
  assert.equal((await quietly(["frobnicate", "x"])).status, 2);
  assert.equal((await quietly(["create", "x", "--bogus"])).status, 2);
  const badRule = await quietly(["create", "x", "--nat", "--hostfwd", "tcp::0-:22"]);
  assert.equal(badRule.status, 1);
  assert.match(badRule.err, /hostfwd 'tcp::0-:22'/);
  const badName = await quietly(["info", "../etc"]);
  assert.equal(badName.status, 1);
  assert.match(badName.err, /not a switch name/);
  assert.equal((await quietly(["capture", "x", "--port", "one", "--out", "f"])).status, 2);
});
