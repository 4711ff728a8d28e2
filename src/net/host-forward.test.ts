import { test } from "node:test";
import assert from "node:assert/strict";
import { formatHostForward, parseHostForward } from "./host-forward.js";
import { NetError } from "./net-error.js";

test("hostfwd rules parse in QEMU's syntax and print back the same", () => {
  assert.deepEqual(parseHostForward("tcp:127.0.0.1:2222-:22"), {
    protocol: "tcp",
    hostAddress: "127.0.0.1",
    hostPort: 2222,
    guestPort: 22,
  });
  assert.deepEqual(parseHostForward("udp::5353-:53"), {
    protocol: "udp",
    hostAddress: "",
    hostPort: 5353,
    guestPort: 53,
  });
  assert.equal(parseHostForward(":127.0.0.1:80-:8080").protocol, "tcp");
  for (const s of ["tcp:127.0.0.1:2222-:22", "udp::1-:65535"])
    assert.equal(formatHostForward(parseHostForward(s)), s);
});

test("bad hostfwd rules are refused with a message naming the rule", () => {
  for (const s of [
    "tcp:127.0.0.1:0-:22",
    "tcp:127.0.0.1:70000-:22",
    "sctp::1-:2",
    "tcp:1.2.3:1-:2",
    "tcp:1.2.3.256:1-:2",
    "tcp::1-10.0.2.15:22",
    "tcp::x-:1",
    "",
  ]) {
    assert.throws(
      () => parseHostForward(s),
      (e: unknown) => e instanceof NetError && e.code === "invalid-argument" && e.message.includes(`'${s}'`),
      s,
    );
  }
});
