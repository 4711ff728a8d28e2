// Owns: parsing the options every API verb shares (where the service is, `--json`) plus each verb's own,
// with node:util's parser, so every verb accepts the same connection flags.
// Must not: know any verb's meaning.
// Spec: README.md "The service and its CLI".

import { parseArgs, type ParseArgsConfig } from "node:util";
import type { ConnectionOptions } from "./api-client.js";
import { UsageError } from "./api-output.js";

export const CONNECTION_HELP = `connection: --socket PATH | --data-dir DIR (the service's UNIX socket; default the default data
directory's) or --url http(s)://HOST:PORT --token SECRET [--ca FILE]; also VIRIDIAN_SOCKET, VIRIDIAN_DATA_DIR,
VIRIDIAN_URL, VIRIDIAN_TOKEN, VIRIDIAN_CA. --json prints JSON documents instead of tables.`;

const COMMON = {
  socket: { type: "string" },
  "data-dir": { type: "string" },
  url: { type: "string" },
  token: { type: "string" },
  ca: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

export interface Parsed {
  conn: ConnectionOptions;
  json: boolean;
  help: boolean;
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

export function parseVerb(args: string[], own: NonNullable<ParseArgsConfig["options"]> = {}): Parsed {
  let r;
  try {
    r = parseArgs({ args, options: { ...COMMON, ...own }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = r.values as Record<string, string | boolean | string[] | undefined>;
  return {
    conn: {
      socket: v.socket as string | undefined,
      dataDir: v["data-dir"] as string | undefined,
      url: v.url as string | undefined,
      token: v.token as string | undefined,
      ca: v.ca as string | undefined,
    },
    json: v.json === true,
    help: v.help === true,
    positionals: r.positionals,
    values: v,
  };
}

export function need(p: Parsed, n: number, usage: string): string[] {
  if (p.positionals.length !== n) throw new UsageError(`usage: ${usage}`);
  return p.positionals;
}
