// Worker-thread entry of the hostile-code fuzzer: runs runFuzz with the seed and count it is given.
import { parentPort, workerData } from "node:worker_threads";
import { runFuzz } from "./fuzz-core.js";

const { seed, count, jitThreshold } = workerData as { seed: number; count: number; jitThreshold?: number };
parentPort!.postMessage(runFuzz(seed, count, jitThreshold));
