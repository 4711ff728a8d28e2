// Owns: the rule for file paths a client names (disk images, ISOs, kernels, initrds): a normalized absolute
// path whose real location (symbolic links resolved) lies inside one of the service's image roots.
// Must not: open or create the file (callers do, after this check), or accept a path it cannot resolve.
// Spec: docs/threat-model.md "Management API" (path traversal).

import { realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, normalize, relative, sep } from "node:path";
import { ApiError } from "../api/errors.js";

function inside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel) && rel.split(sep)[0] !== "..");
}

function real(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

/**
 * Checks `path` against `roots`; `mustExist` true: the file must exist and be a regular file; false: it must
 * not exist yet (its parent must). Returns the path unchanged.
 */
export function checkImagePath(
  path: string,
  roots: readonly string[],
  mustExist: boolean | "either",
): string {
  if (!isAbsolute(path) || normalize(path) !== path || path.endsWith("/") || path.includes("\0"))
    throw new ApiError("path-not-allowed", `not a normalized absolute path: ${JSON.stringify(path)}`);
  const parent = real(dirname(path));
  if (parent === null) throw new ApiError("path-not-allowed", `no such directory: ${dirname(path)}`);
  const realRoots = roots.map(real).filter((r): r is string => r !== null);
  if (!realRoots.some((r) => inside(r, parent)))
    throw new ApiError("path-not-allowed", `${path} is outside the image roots (${roots.join(", ")})`);
  const st = statSync(path, { throwIfNoEntry: false });
  if (st === undefined) {
    if (mustExist === true) throw new ApiError("path-not-allowed", `no such file: ${path}`);
    return path;
  }
  if (mustExist === false) throw new ApiError("conflict", `${path} exists already`);
  const target = real(path);
  if (target === null || !realRoots.some((r) => inside(r, target)))
    throw new ApiError("path-not-allowed", `${path} leads outside the image roots`);
  if (!st.isFile()) throw new ApiError("path-not-allowed", `${path} is not a regular file`);
  return path;
}
