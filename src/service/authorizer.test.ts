// Deny by default, scopes as boundaries, host assignments, groups, tokens as salted hashes, the audit log.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { OPERATION_IDS } from "../api/operations.js";
import { AuditLog } from "./audit-log.js";
import { AuthStore } from "./auth-store.js";
import { Authorizer } from "./authorizer.js";

const root = mkdtempSync(join(tmpdir(), "viridian-authz-"));
after(() => rmSync(root, { recursive: true, force: true }));

describe("Authorizer", () => {
  const store = new AuthStore(join(root, "auth.json"));
  const audit = new AuditLog(join(root, "audit.log"));
  const authz = new Authorizer(store, audit);
  store.createScope("lab");
  store.createScope("prod");
  store.createPrincipal("alice", "user");
  store.createPrincipal("bob", "user");
  store.createPrincipal("ops", "group");
  const alice = () => ({ name: "alice", groups: store.groupsOf("alice"), local: false });

  it("denies everything by default", () => {
    for (const op of OPERATION_IDS) assert.equal(authz.check(alice(), op, "lab").allowed, false, op);
  });

  it("a scope assignment covers that scope only, never the host", () => {
    store.createAssignment("alice", "VM Administrator", "lab");
    assert.ok(authz.check(alice(), "vm.create", "lab").allowed);
    assert.equal(authz.check(alice(), "vm.create", "prod").allowed, false);
    assert.equal(authz.check(alice(), "auth.admin", "lab").allowed, false);
    assert.equal(authz.check(alice(), "service.config.write", "host").allowed, false);
  });

  it("group assignments reach members; a host assignment reaches every scope", () => {
    store.createAssignment("ops", "Viewer", "host");
    assert.equal(authz.check(alice(), "vm.config.read", "prod").allowed, false);
    store.setMember("ops", "alice", true);
    assert.ok(authz.check(alice(), "vm.config.read", "prod").allowed);
    assert.ok(authz.check(alice(), "service.config.read", "host").allowed);
    store.setMember("ops", "alice", false);
    assert.equal(authz.check(alice(), "vm.config.read", "prod").allowed, false);
  });

  it("custom roles accept AzMan names and refuse unknown operations", () => {
    const r = store.createRole("starter", "", ["Start Virtual Machine", "vm.stop"]);
    assert.deepEqual(r.operations, ["vm.start", "vm.stop"]);
    assert.throws(() => store.createRole("bad", "", ["vm.fly"]), /unknown operation/);
  });

  it("tokens are kept as salted hashes only, and revocation is immediate", () => {
    const { token, secret } = store.createToken("bob", "ci");
    assert.deepEqual(store.verify(secret)?.name, "bob");
    const file = readFileSync(join(root, "auth.json"), "utf8");
    assert.ok(!file.includes(secret.split(".")[1]!), "the secret is not in the store");
    assert.equal(store.verify(secret.slice(0, -1) + (secret.endsWith("A") ? "B" : "A")), null);
    store.revokeToken(token.id);
    assert.equal(store.verify(secret), null);
  });

  it("records every decision, allow and deny, in order", () => {
    const before = audit.read(0, 100000).length;
    authz.authorize(alice(), "vm.start", "lab", "vm:x");
    authz.authorize(alice(), "vm.start", "prod", "vm:y");
    const entries = audit.read(0, 100000).slice(before);
    assert.deepEqual(
      entries.map((e) => [e.principal, e.operation, e.target, e.result]),
      [
        ["alice", "vm.start", "vm:x", "allow"],
        ["alice", "vm.start", "vm:y", "deny"],
      ],
    );
    assert.ok(entries[1]!.seq > entries[0]!.seq);
  });

  it("refuses to start on an unreadable store instead of starting empty", () => {
    const path = join(root, "broken.json");
    writeFileSync(path, "{ not json");
    assert.throws(() => new AuthStore(path), /cannot read the authorization store/);
  });
});
