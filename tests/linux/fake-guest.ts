// Owns: a stand-in for an emulator running the bundled guest, used only by guest-console.test.ts to check
// the console driver itself: it prints boot lines, a busybox-style prompt with its cursor-position query,
// echoes typed lines as busybox's line editor does (wrapping at 80 columns), interleaves a kernel message,
// and on SIGTERM prints a processor state and exits 143 as `viridian run` does.
// Must not: be used by any acceptance test or benchmark (those run real emulators).
// Spec: issue 3's `viridian run` contract (SIGTERM: "viridian: stopped by SIGTERM" and the CPU state on
// stderr, status 143); ECMA-48 Device Status Report (CSI 6 n, answered with CSI row ; col R).

const PROMPT = "viridian-guest:~ # ";
const out = (s: string): boolean => process.stdout.write(s);
let cursorAnswer = "";
let pending = "";

for (let i = 1; i <= 60; i++) out(`[    0.${String(i).padStart(6, "0")}] boot line ${i}\r\n`);
out(PROMPT + "\u001b[6n");

process.on("SIGTERM", () => {
  process.stderr.write(
    "viridian: stopped by SIGTERM\nRIP=ffffffff81000000 RSP=ffffffff82003f58 CR0=80050033\n",
  );
  process.exit(143);
});

process.stdin.setEncoding("latin1");
process.stdin.on("data", (chunk: string) => {
  pending += chunk;
  // The terminal's answer to the cursor query comes before any typed line.
  // eslint-disable-next-line no-control-regex -- the terminal's answer starts with ESC
  const report = /^\u001b\[(\d+);(\d+)R/.exec(pending);
  if (report) {
    cursorAnswer = report[0];
    pending = pending.slice(report[0].length);
  }
  let nl: number;
  while ((nl = pending.indexOf("\n")) >= 0) {
    const line = pending.slice(0, nl);
    pending = pending.slice(nl + 1);
    // Echo with a wrap at column 80 (the prompt takes 19), as the line editor does for long lines.
    const first = 80 - PROMPT.length;
    out(line.length > first ? `${line.slice(0, first)}\r\r\n${line.slice(first)}` : line);
    out("\r\n");
    if (line === "hang") continue;
    if (line === "poweroff") process.exit(0);
    if (line === "cursor") out(`answer ${JSON.stringify(cursorAnswer)}\r\n`);
    else if (line.startsWith("echo ")) {
      out(line.slice(5, 8));
      out("[    9.000001] a kernel message in the middle\r\n");
      out(line.slice(8) + "\r\n");
    }
    out(PROMPT + "\u001b[6n");
  }
});
