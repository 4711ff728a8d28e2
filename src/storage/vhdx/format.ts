// Owns: the VHDX entry in the image-format registry: signature probe, create, open.
// Must not: contain format logic itself (layout.ts, log.ts, image.ts, create.ts hold it).
// Spec: MS-VHDX v20240423 section 2.2.1 (the "vhdxfile" file type identifier used to probe).

import type { FileHandle } from "../disk.js";
import type { ImageFormat } from "../image-format.js";
import { createVhdx } from "./create.js";
import { VhdxImage } from "./image.js";
import { isVhdxSignature } from "./layout.js";

export const vhdxFormat: ImageFormat = {
  name: "vhdx",
  async probe(file: FileHandle): Promise<boolean> {
    const b = new Uint8Array(8);
    const n = await file.read(0, b);
    return n === 8 && isVhdxSignature(b);
  },
  create: createVhdx,
  async open(opener, path, options) {
    const image = await VhdxImage.open(opener, path, options);
    await image.countAllocated();
    return image;
  },
};
