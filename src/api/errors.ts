// Owns: the API's stable error codes, the HTTP status each maps to, and the error body every failure carries
// (`{ error: { code, message } }`): codes are for programs and tests, messages for people.
// Must not: depend on the service or the CLI (both use it), or change a published code's meaning.
// Spec: docs/architecture.md "The management API" (error codes); src/storage/disk.ts is the same idea.

/** Every code the API can answer with; a code, once published, keeps its meaning and its HTTP status. */
export const ERROR_STATUS = {
  "bad-request": 400, // the request does not match its schema (wrong types, unknown fields, bad JSON)
  "path-not-allowed": 400, // a file path outside the service's allowed roots, or not a plain path
  unauthorized: 401, // no bearer token, or one that is unknown or revoked
  forbidden: 403, // the principal lacks the operation on the target's scope
  "not-found": 404, // no such VM, job, principal, scope, role, assignment, token or route
  "method-not-allowed": 405,
  conflict: 409, // a name already taken, a scope still in use, a built-in role
  "invalid-state": 409, // the VM's lifecycle state does not allow the operation (start a Running VM)
  "invalid-configuration": 409, // the VM's configuration file is unreadable; only delete is possible
  "in-use": 409, // a switch that a running VM is connected to (stop the VM or remove its NIC first)
  "precondition-failed": 412, // If-Match names a version that is no longer current
  "payload-too-large": 413,
  "unsupported-media-type": 415,
  "rate-limited": 429,
  internal: 500, // a bug: never expected, and the fuzz test fails on it
  "not-available": 501, // a feature this build does not have yet (the message says which)
  unavailable: 503, // the service is shutting down or a worker does not answer
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ApiErrorBody {
  error: { code: ErrorCode; message: string };
}

/** An error the service answers with: the code decides the HTTP status. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
  /** The HTTP status under the name frameworks look for. */
  get statusCode(): number {
    return ERROR_STATUS[this.code];
  }
  body(): ApiErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === "string" && Object.prototype.hasOwnProperty.call(ERROR_STATUS, v);
}
