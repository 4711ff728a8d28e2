// Import rules between tiers (docs/architecture.md, "Tiers and import rules").
// Each rule names a tier and the tiers it may NOT reach; tests (*.test.ts) follow the same rules
// except that they may use Node built-ins.
const tier = (name) => `^src/${name}/`;
const notTest = "\\.test\\.ts$";

/** Tier -> tiers it may import (besides itself). */
const allowed = {
  support: [],
  // Types shared by the processor, the hypervisor and the chipset (clock, interrupt source, APIC message,
  // IRQ line): below all three, so none of them mirrors another's types.
  contracts: [],
  memory: ["support"],
  x86: ["support", "contracts", "memory"],
  hv: ["support", "contracts", "memory", "x86"],
  chipset: ["support", "contracts", "memory", "hv"],
  firmware: ["support", "memory"],
  vmbus: ["support", "contracts", "memory", "hv"],
  vsp: ["support", "memory", "vmbus", "storage", "net"],
  storage: ["support"],
  net: ["support"],
  host: ["support", "storage", "net"],
  worker: [
    "support",
    "contracts",
    "memory",
    "x86",
    "hv",
    "chipset",
    "firmware",
    "vmbus",
    "vsp",
    "storage",
    "net",
    "host",
  ],
  // The API contract (schemas, operation table, route table): what the service serves and its clients speak.
  api: [],
  service: ["support", "api", "worker", "storage", "host"],
  cli: ["support", "api", "memory", "x86", "hv", "chipset", "firmware", "storage", "net", "worker", "host"],
  web: ["support", "api"],
};
const tiers = Object.keys(allowed);
const portable = [
  "support",
  "contracts",
  "api",
  "memory",
  "x86",
  "hv",
  "chipset",
  "firmware",
  "vmbus",
  "vsp",
  "storage",
  "net",
];

const forbidden = tiers.map((name) => {
  const others = tiers.filter((t) => t !== name && !allowed[name].includes(t));
  return {
    name: `tier-${name}`,
    comment: `${name} may import only: ${allowed[name].join(", ") || "nothing of ours"}`,
    severity: "error",
    from: { path: tier(name) },
    to: { path: others.length ? `^src/(${others.join("|")})/` : "^$" },
  };
});

forbidden.push(
  {
    name: "portable-core-has-no-node",
    comment:
      "The core is platform-neutral: no Node built-ins outside worker/service/cli/host (tests excepted).",
    severity: "error",
    from: { path: `^src/(${portable.join("|")})/`, pathNot: notTest },
    to: { dependencyTypes: ["core"] },
  },
  {
    name: "cli-builds-no-vm",
    comment:
      "The CLI describes a VM (VmConfig) and the worker builds it (buildVm): no processors or guest RAM here.",
    severity: "error",
    from: { path: "^src/cli/" },
    to: { path: "^src/(x86/cpu|memory/guest-memory)\\.ts$" },
  },
  {
    name: "vsp-is-alone",
    comment: "A VSP never imports another VSP.",
    severity: "error",
    from: { path: "^src/vsp/([^/]+)/" },
    to: { path: "^src/vsp/", pathNot: "^src/vsp/$1/" },
  },
  {
    name: "cli-reaches-service-over-http-only",
    comment:
      "The CLI is a client of the API: it may use the API contract (src/api) but never the service's internals, nor the worker's protocol.",
    severity: "error",
    from: { path: "^src/cli/" },
    to: { path: "^src/(service/|worker/(protocol|worker-main))" },
  },
  {
    name: "no-circular",
    severity: "error",
    from: {},
    to: { circular: true },
  },
  {
    name: "no-grab-bag-names",
    comment: "No utils/common/misc modules.",
    severity: "error",
    from: {},
    to: { path: "(^|/)(utils?|common|misc)(/|\\.ts$)" },
  },
);

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
