// Owns: a VM's live graphs (uPlot): guest instructions per second, host CPU of its worker, disk and network
// throughput, as rates derived from consecutive samples of the VM's metrics WebSocket (the service pushes one
// a second; nothing here polls), the last two minutes of them, and each graph's data on its figure element
// (`data-values`, the arrays uPlot draws) for assistive tools and the browser test.
// Must not: invent a rate across a gap (no worker, a restarted worker whose counters began again: null, which
// uPlot draws as a break), or keep more than the window.
// Spec: docs/architecture.md "The web UI (src/web/)" (graphs); the vmMetrics route of src/api/routes.ts.

import uPlot from "uplot";
import type { VmMetricsSample } from "../api/schemas.js";
import { el } from "./dom.js";

/** Samples kept per graph (one a second). */
const WINDOW = 120;

type Counters = NonNullable<VmMetricsSample["counters"]>;

interface GraphSpec {
  id: string;
  title: string;
  unit: string;
  series: Array<{ label: string; stroke: string; rate: (a: Counters, b: Counters, dt: number) => number }>;
  format: (v: number) => string;
}

const perSecond = (k: keyof Counters) => (a: Counters, b: Counters, dt: number) => (b[k] - a[k]) / dt;

function bytes(v: number): string {
  if (v >= 1024 ** 2) return `${(v / 1024 ** 2).toFixed(1)} MiB/s`;
  if (v >= 1024) return `${(v / 1024).toFixed(1)} KiB/s`;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} B/s`;
}

const SPECS: GraphSpec[] = [
  {
    id: "graph-ips",
    title: "Guest instructions per second",
    unit: "instructions/s",
    series: [{ label: "Instructions/s", stroke: "#2f81f7", rate: perSecond("instructionsRetired") }],
    format: (v) => `${(v / 1e6).toFixed(1)} M/s`,
  },
  {
    id: "graph-cpu",
    title: "Host CPU of the worker",
    unit: "% of one core",
    series: [
      { label: "CPU %", stroke: "#d29922", rate: (a, b, dt) => ((b.cpuSeconds - a.cpuSeconds) / dt) * 100 },
    ],
    format: (v) => `${v.toFixed(0)} %`,
  },
  {
    id: "graph-disk",
    title: "Disk throughput",
    unit: "bytes/s",
    series: [
      { label: "Read", stroke: "#3fb950", rate: perSecond("diskReadBytes") },
      { label: "Write", stroke: "#f85149", rate: perSecond("diskWriteBytes") },
    ],
    format: bytes,
  },
  {
    id: "graph-net",
    title: "Network throughput",
    unit: "bytes/s",
    series: [
      { label: "Received", stroke: "#a371f7", rate: perSecond("netRxBytes") },
      { label: "Sent", stroke: "#db61a2", rate: perSecond("netTxBytes") },
    ],
    format: bytes,
  },
];

interface Graph {
  spec: GraphSpec;
  figure: HTMLElement;
  caption: HTMLElement;
  plot: uPlot;
  /** x (seconds since the epoch) then one array per series. */
  data: Array<Array<number | null>>;
}

export class VmGraphs {
  readonly root: HTMLElement;
  private readonly graphs: Graph[] = [];
  private last: { t: number; c: Counters } | null = null;

  constructor() {
    this.root = el("div", { class: "graphs" });
    for (const spec of SPECS) {
      const caption = el("figcaption", {}, spec.title, el("span", { class: "latest muted" }, " —"));
      const figure = el("figure", {
        id: spec.id,
        class: "graph",
        role: "img",
        "aria-label": `${spec.title} (${spec.unit}), the last two minutes`,
        "data-values": "[]",
      });
      figure.append(caption);
      this.root.append(figure);
      const data: Array<Array<number | null>> = [[], ...spec.series.map(() => [])];
      const plot = new uPlot(
        {
          width: 320,
          height: 140,
          legend: { show: false },
          cursor: { show: false },
          scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(max, 1) * 1.1] } },
          axes: [
            { stroke: "currentColor", grid: { stroke: "rgba(128,128,128,0.2)" } },
            {
              stroke: "currentColor",
              grid: { stroke: "rgba(128,128,128,0.2)" },
              size: 70,
              values: (_u, splits) => splits.map((v) => spec.format(v)),
            },
          ],
          series: [{}, ...spec.series.map((x) => ({ label: x.label, stroke: x.stroke, width: 2 }))],
        },
        data as uPlot.AlignedData,
        figure,
      );
      this.graphs.push({ spec, figure, caption, plot, data });
    }
  }

  /** One sample from the metrics stream: a point per graph (null across a gap). */
  push(sample: VmMetricsSample): void {
    const t = Date.parse(sample.time) / 1000;
    const c = sample.counters;
    const prev = this.last;
    this.last = c ? { t, c } : null;
    // A first sample, a gap, or a worker that started over (its counters went back) gives no rate.
    const ok =
      prev !== null && c !== null && t > prev.t && c.instructionsRetired >= prev.c.instructionsRetired;
    for (const g of this.graphs) {
      g.data[0]!.push(t);
      g.spec.series.forEach((s, i) =>
        g.data[i + 1]!.push(ok ? Math.max(0, s.rate(prev.c, c, t - prev.t)) : null),
      );
      if (g.data[0]!.length > WINDOW) for (const a of g.data) a.shift();
      g.plot.setData(g.data as uPlot.AlignedData);
      g.figure.setAttribute("data-values", JSON.stringify(g.data));
      const latest = g.spec.series
        .map((s, i) => {
          const v = g.data[i + 1]!.at(-1);
          return `${g.spec.series.length > 1 ? `${s.label} ` : ""}${v === null || v === undefined ? "—" : g.spec.format(v)}`;
        })
        .join(", ");
      g.caption.querySelector(".latest")!.textContent = ` ${latest}`;
    }
  }

  /** Fits the graphs to their container (the page's width changed). */
  fit(): void {
    for (const g of this.graphs) {
      const w = Math.max(240, Math.min(520, g.figure.clientWidth || 320));
      if (w !== g.plot.width) g.plot.setSize({ width: w, height: 140 });
    }
  }

  dispose(): void {
    for (const g of this.graphs) g.plot.destroy();
  }
}
