// Owns: the shape of a `viridian` subcommand, shared by main.ts and every subcommand module (kept apart
// from main.ts so subcommands do not import the dispatcher that lazily imports them).
// Must not: contain behaviour.
// Spec: none; the commands are documented in README.md.

/** A subcommand: gets the arguments after its name, returns the process exit status. */
export type Command = {
  summary: string;
  run(args: string[]): Promise<number>;
};
