/**
 * The one error type of the library. Every failure carries a stable {@link AllocatorErrorCode}
 * that programs can branch on, and a message a person can act on, printing ranges in the
 * Linux `%pR` style (`[mem 0x1000-0x1fff]`).
 *
 * A call that throws an `AllocatorError` has changed nothing.
 */

/**
 * Stable error codes (frozen). New codes may be added; existing ones never change meaning.
 * @enum
 */
export const AllocatorErrorCode = Object.freeze({
  /** An address computation would pass 2^64-1 (for example base + size of a pool). */
  Overflow: "Overflow",
  /** A computation would go below zero, or a pool of size 0 was asked for. */
  Underflow: "Underflow",
  /** A range whose start is above its end, or a range that is not what the call needs. */
  InvalidRange: "InvalidRange",
  /** A size of 0, or a size that cannot be represented. */
  InvalidSize: "InvalidSize",
  /** An alignment that is not a power of two from 1 to 2^63. */
  InvalidAlignment: "InvalidAlignment",
  /** An exact address that is not a multiple of the requested alignment. */
  UnalignedAddress: "UnalignedAddress",
  /** No free space or id satisfies the request. */
  ResourceNotAvailable: "ResourceNotAvailable",
  /** A value outside the pool, window or bus it was meant for. */
  OutOfRange: "OutOfRange",
  /** Freeing something that is not allocated. */
  NeverAllocated: "NeverAllocated",
  /** Freeing something that was allocated once and has been freed since. */
  AlreadyReleased: "AlreadyReleased",
  /** The request conflicts with something that is already held; the message names its owner. */
  Overlap: "Overlap",
  /** A parameter of the wrong type or value (negative, fractional, too large, not a number). */
  InvalidArgument: "InvalidArgument",
  /** A snapshot that is malformed, inconsistent, or of an unknown format or version. */
  InvalidSnapshot: "InvalidSnapshot",
  /** A device, owner or mapping that does not exist. */
  NotFound: "NotFound",
  /** A request needs an allocator callback that was not provided, and carries no fixed value. */
  MissingAllocator: "MissingAllocator",
  /** The call is not allowed in the current state (for example re-entering during a dispatch). */
  InvalidState: "InvalidState",
} as const);

/** One of the {@link AllocatorErrorCode} values. */
export type AllocatorErrorCode = (typeof AllocatorErrorCode)[keyof typeof AllocatorErrorCode];

/** The error thrown by every part of the library. */
export class AllocatorError extends Error {
  /** Stable, machine-readable reason. */
  readonly code: AllocatorErrorCode;
  /** The owner of the resource that caused a conflict, when there is one. */
  readonly owner: string | undefined;
  /** The device whose registration (or restore) failed (`virtio-blk@3`, or its name before it has an id). */
  readonly device: string | undefined;
  /** Which of the device's requests failed, when one did. */
  readonly requestIndex: number | undefined;

  /**
   * Library code throws these; a program only builds one to report a failure in the same terms
   * (a device model refusing a request, a test double).
   * @param options `owner`, `device` and `requestIndex` become the properties of the same names;
   *   `cause` is the standard `Error` cause.
   */
  constructor(
    code: AllocatorErrorCode,
    message: string,
    options?: { owner?: string | undefined; cause?: unknown; device?: string | undefined; requestIndex?: number | undefined },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AllocatorError";
    this.code = code;
    this.owner = options?.owner;
    this.device = options?.device;
    this.requestIndex = options?.requestIndex;
  }
}

/** True when `error` is an {@link AllocatorError}, optionally with the given code. */
export function isAllocatorError(error: unknown, code?: AllocatorErrorCode): error is AllocatorError {
  return error instanceof AllocatorError && (code === undefined || error.code === code);
}
