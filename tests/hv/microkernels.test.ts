// The hypervisor microkernels (tests/hv/*.asm) on the real processor under a Partition, checked against the
// TLFS: discovery, MSR protocol, every common hypercall input error and its status, SynIC delivery (busy
// slot, message-pending, EOM), synthetic timers (all four, one-shot and periodic, on time in deterministic
// mode), reference TSC page = reference counter, and a TSC that never decreases.
import { test } from "node:test";
import assert from "node:assert/strict";
import { assembleHvKernel, bootPartition, parseValues, runPartition, type RunResult } from "./harness.js";
import type { GuestCrashReport, PartitionOptions } from "../../src/hv/partition.js";

function show(out: string): string {
  return out.split("\n").slice(-40).join("\n");
}

test("hv-basics: discovery, MSR protocol, hypercall status codes, crash report", () => {
  const image = assembleHvKernel("hv-basics");
  const crashes: GuestCrashReport[] = [];
  const p = bootPartition(image, { onGuestCrash: (r) => crashes.push(r) });
  const posted: string[] = [];
  p.registerMessagePort(1, (vp, type, payload) => {
    posted.push(`${vp}:${type}:${Buffer.from(payload).toString("latin1")}`);
    return 0;
  });
  const signalled: number[] = [];
  p.registerEventPort(5, (_vp, flag) => signalled.push(flag));
  const r = runPartition(p);
  assert.equal(r.stop, "debug-exit", `${r.stop}\n${show(r.output)}`);
  const v = parseValues(r.output);
  assert.ok(v.size > 40, show(r.output));
  const expect: Record<string, number> = {
    cpuid1_hv: 1,
    max_leaf: 0x4000000a,
    vendor_ebx: 0x7263694d,
    vendor_ecx: 0x666f736f,
    vendor_edx: 0x76482074,
    interface: 0x31237648,
    priv_low: 0xa6e,
    priv_high: 0x30,
    features: 0x80500,
    hints: 0x220,
    max_vps: 1,
    leaf9: 0,
    hypercall_no_osid: 0,
    hypercall_enabled: 1,
    hcpage_code: 0xc3c1010f,
    vp_index: 0,
    tsc_hz: 1_000_000_000,
    apic_hz: 200_000_000,
    crash_ctl: 0xc000000000000000,
    st_unknown_code: 2,
    st_ext_code: 2,
    st_reserved_27: 3,
    st_reserved_31: 3,
    st_reserved_44: 3,
    st_reserved_60: 3,
    st_rep_on_simple: 3,
    st_start_on_simple: 3,
    st_rep_zero: 3,
    st_start_ge_count: 3,
    st_varhdr: 3,
    st_fast_postmsg: 3,
    st_align: 4,
    st_cross_page: 4,
    st_outside_ram: 4,
    st_rep_list_cross: 4,
    st_post_type0: 5,
    st_post_type_msb: 5,
    st_post_size: 5,
    st_post_ok: 0,
    st_post_unknown_conn: 0x12,
    st_post_conn_reserved: 0x12,
    st_signal_ok: 0,
    st_signal_flag: 5,
    st_signal_unknown: 0x12,
    st_ipi_vector: 5,
    st_ipi_ok: 0,
    ipi_taken: 1,
    st_flush_flags: 5,
    st_flush_ok: 0,
    st_flush_list: 0x3_0000_0000,
    st_spin_wait: 0,
  };
  for (const [k, want] of Object.entries(expect)) {
    assert.equal(v.get(k), BigInt(want), `${k}: got ${v.get(k)?.toString(16)}, want ${want.toString(16)}`);
  }
  // crash_ctl is printed as the full 64-bit value
  const faults: Array<[string, number]> = [
    ["ud_no_page", 6],
    ["wr_vp_index", 13],
    ["wr_time_ref", 13],
    ["rd_unknown", 13],
    ["rd_guest_idle", 13],
    ["rd_vp_runtime", 13],
    ["wr_hypercall_outside_ram", 13],
    ["ud_xmm_not_offered", 6],
    ["ud_ring3", 6],
  ];
  for (const [name, vec] of faults) {
    assert.match(
      r.output,
      new RegExp(`${name}: exc: v=0x${vec.toString(16)} `),
      `${name}\n${show(r.output)}`,
    );
  }
  assert.deepEqual(posted, ["0:1:abcd"]);
  assert.deepEqual(signalled, [0]);
  assert.equal(crashes.length, 1);
  assert.equal(crashes[0]!.message, "Kernel panic - not syncing: sysrq triggered crash\n");
  assert.equal(crashes[0]!.parameters[0], "0000000000001234");
  assert.equal(crashes[0]!.parameters[2], "ffffffff81000000");
  assert.deepEqual(p.crash, crashes[0]);
});

test("hv-synic: busy slot queues, message-pending, EOM redelivers, masked SINT, event flags", () => {
  const p = bootPartition(assembleHvKernel("hv-synic"));
  p.registerMessagePort(2, (vp, _type, payload) => {
    let status = 0;
    for (let i = 0; i < payload[0]!; i++) {
      status = p.postMessageToGuest(vp, 2, 0x100 + i, new Uint8Array([0x10 + i, 0, 0, 0]));
    }
    return status;
  });
  p.registerMessagePort(3, (vp) => p.postMessageToGuest(vp, 2, 1, new Uint8Array(8)));
  p.registerEventPort(6, (vp) => void p.signalGuestEvent(vp, 2, 9));
  const r = runPartition(p);
  assert.equal(r.stop, "debug-exit", `${r.stop}\n${show(r.output)}`);
  const lines = r.output.split("\n").map((l) => l.trim());
  const expected = [
    "s1: status=0x0 type=0x100 pending=0x1 irqs=0x1",
    "s2: type=0x100 pending=0x1 irqs=0x1",
    "s3: type=0x0 pending=0x1 irqs=0x1",
    "s4: type=0x101 pending=0x1 irqs=0x2",
    "s5: type=0x102 pending=0x0 irqs=0x3",
    "s6: payload=0x12 type=0x0 pending=0x0 irqs=0x3",
    "s7: type=0x100 pending=0x0 irqs=0x3",
    "e1: status=0x0 flags=0x2 irqs=0x4",
    "e2: irqs=0x4",
    "e3: irqs=0x5",
    "d1: status=0x18",
  ];
  for (const line of expected) assert.ok(lines.includes(line), `missing "${line}"\n${show(r.output)}`);
  assert.match(r.output, /d2: exc: v=0xd /);
  assert.match(r.output, /d3: exc: v=0xd /);
});

const PERIOD = 1000;

function checkTimers(r: RunResult): void {
  assert.equal(r.stop, "debug-exit", `${r.stop}\n${show(r.output)}`);
  const hex = (s: string): number => Number.parseInt(s, 16);
  const oneshots = [...r.output.matchAll(/oneshot timer=0x(\w+) due=0x(\w+) at=0x(\w+) cfg=0x(\w+)/g)];
  assert.equal(oneshots.length, 4, show(r.output));
  for (const m of oneshots) {
    const late = hex(m[3]!) - hex(m[2]!);
    assert.ok(late >= 0 && late <= 2, `one-shot timer ${m[1]} fired ${late} units after its due time`);
    assert.equal(hex(m[4]!) & 1, 0, "a one-shot timer disables itself");
    assert.equal(hex(m[4]!) & 8, 8, "auto-enable stays set");
  }
  const periodic = [...r.output.matchAll(/periodic timer=0x(\w+) start=0x(\w+)((?: at=0x\w+)+)/g)];
  assert.equal(periodic.length, 4, show(r.output));
  for (const m of periodic) {
    const start = hex(m[2]!);
    const at = [...m[3]!.matchAll(/at=0x(\w+)/g)].map((x) => hex(x[1]!));
    assert.equal(at.length, 4);
    at.forEach((t, k) => {
      const late = t - (start + (k + 1) * PERIOD);
      assert.ok(
        late >= 0 && late <= 4,
        `periodic timer ${m[1]} tick ${k}: ${late} units after start + period`,
      );
      if (k > 0) assert.equal(t - at[k - 1]!, PERIOD, `periodic timer ${m[1]} interval`);
    });
  }
  const msg =
    /message due=0x(\w+) at=0x(\w+) type=0x(\w+) size=0x(\w+) index=0x(\w+) expiration=0x(\w+) delivery=0x(\w+)/.exec(
      r.output,
    );
  assert.ok(msg, show(r.output));
  assert.equal(hex(msg[3]!), 0x80000010);
  assert.equal(hex(msg[4]!), 24);
  assert.equal(hex(msg[5]!), 1);
  assert.equal(hex(msg[6]!), hex(msg[1]!), "expiration time = due time");
  assert.ok(hex(msg[7]!) >= hex(msg[6]!) && hex(msg[7]!) - hex(msg[6]!) <= 2);
  assert.ok(hex(msg[2]!) - hex(msg[1]!) <= 2);
  const mp = /msgperiodic start=0x(\w+)((?: at=0x\w+ exp=0x\w+)+)/.exec(r.output);
  assert.ok(mp, show(r.output));
  const ticks = [...mp[2]!.matchAll(/at=0x(\w+) exp=0x(\w+)/g)].map((x) => [hex(x[1]!), hex(x[2]!)] as const);
  assert.equal(ticks.length, 4);
  ticks.forEach(([at, exp], k) => {
    assert.ok(at >= exp && at - exp <= 2, `message tick ${k} late by ${at - exp}`);
    if (k > 0) assert.equal(exp - ticks[k - 1]![1], PERIOD);
  });
}

test("hv-timers: all four timers fire on time, one-shot and periodic, direct and message mode", () => {
  checkTimers(runPartition(bootPartition(assembleHvKernel("hv-timers"))));
});

test("hv-timers through the real local APIC (x2APIC, EOI in the handlers): same timing", () => {
  checkTimers(runPartition(bootPartition(assembleHvKernel("hv-timers", { USE_APIC: 1 })), 20_000_000, true));
});

test("hv-time: TSC page formula brackets TIME_REF_COUNT at every read; TSC and counter never decrease", () => {
  const configs: Array<Partial<PartitionOptions>> = [
    { time: "deterministic" },
    { time: "deterministic", tscHz: 2_400_000_000, nsPerInstruction: 3 },
    { time: "wall", tscHz: 3_100_000_000 },
  ];
  for (const config of configs) {
    // In wall mode a 5 us period would interrupt this slow emulator after every exit: use 200 us.
    const image = assembleHvKernel(
      "hv-time",
      config.time === "wall" ? { TIMER_PERIOD: 2000, ITERATIONS: 5000 } : {},
    );
    const r = runPartition(bootPartition(image, config), 50_000_000);
    const label = JSON.stringify(config);
    assert.equal(r.stop, "debug-exit", `${label} ${r.stop}\n${show(r.output)}`);
    const v = parseValues(r.output);
    assert.equal(v.get("seq"), 1n, label);
    assert.equal(v.get("offset"), 0n, label);
    assert.equal(v.get("violations"), 0n, `${label}\n${r.output}`);
    assert.equal(v.get("tsc_decreases"), 0n, label);
    assert.equal(v.get("ref_decreases"), 0n, label);
    assert.ok((v.get("ticks") ?? 0n) > 50n, `${label}: timer interrupts ${v.get("ticks")}`);
    if (config.time === "deterministic") assert.ok((v.get("exact") ?? 0n) > 1000n, label);
  }
});
