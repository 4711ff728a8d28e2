// Owns: the type declarations of the part of the JavaScript WebAssembly API the project uses (guest memory
// backed by a shared WebAssembly.Memory, the x86 translation tier); the project's `lib` is ES2022 without
// DOM, which is where TypeScript declares this API.
// Must not: declare anything the project does not call.
// Spec: WebAssembly JavaScript Interface (W3C), sections 5.1 (namespace), 5.2 (Module), 5.3 (Instance),
// 5.4 (Memory), 5.1 instantiate (asynchronous compilation); threads proposal (shared memories).

declare namespace WebAssembly {
  type ImportValue = ((...args: never[]) => unknown) | Memory | Table;
  type Imports = Record<string, Record<string, ImportValue>>;
  type ExportValue = ((...args: never[]) => unknown) | Memory;

  interface MemoryDescriptor {
    initial: number;
    maximum?: number;
    shared?: boolean;
  }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  interface TableDescriptor {
    element: "anyfunc";
    initial: number;
    maximum?: number;
  }
  class Table {
    constructor(descriptor: TableDescriptor);
    readonly length: number;
    get(index: number): ((...args: never[]) => unknown) | null;
    set(index: number, value: ((...args: never[]) => unknown) | null): void;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports?: Imports);
    readonly exports: Record<string, ExportValue>;
  }
  class CompileError extends Error {}
  class LinkError extends Error {}
  class RuntimeError extends Error {}
  function compile(bytes: Uint8Array): Promise<Module>;
  function instantiate(bytes: Uint8Array, imports?: Imports): Promise<{ module: Module; instance: Instance }>;
  function validate(bytes: Uint8Array): boolean;
}
