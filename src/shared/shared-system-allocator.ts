/**
 * A system allocator that every thread of a VM can use: the main thread and any number of Web
 * Workers or `worker_threads`, each holding a {@link SharedSystemAllocator} attached to one
 * `SharedArrayBuffer`.
 *
 * **How.** It is a replicated state machine over a shared log. Every participant keeps a local
 * `DefaultSystemAllocator` (its replica). A call takes the lock in the buffer, brings the replica
 * up to date (reloading the active checkpoint when another participant wrote a new one, then
 * replaying the log entries committed since it last looked), runs on the replica, and, when it
 * changed something, appends its encoded arguments to the log and commits them with one
 * `Atomics.store` of the log's new length. Every replica therefore runs the same calls in the
 * same order, so results, errors and owner rules are those of `DefaultSystemAllocator` by
 * construction, and a failed call (which changes no replica) commits nothing.
 *
 * **Checkpoints.** The buffer has two slots, each a checkpoint (the UTF-8 JSON of
 * `DefaultSystemAllocator.toJSON()`) followed by a log. When a call's entry no longer fits the
 * active log, the caller writes its new state (the call included) as the checkpoint of the other
 * slot with an empty log, and commits it with one `Atomics.store` of the epoch (whose parity
 * names the slot).
 *
 * **Termination.** Every shared write is either not yet committed or committed by one atomic
 * store, so a participant terminated at any instant leaves a consistent buffer; the only damage
 * is a lock it may have left held. The thread that supervises workers calls
 * {@link SharedSystemAllocator.recoverFrom} with the participant id of a worker it learns has
 * exited, which releases the lock if that worker held it. What the dead worker had allocated
 * stays held under its owners; the supervisor frees it with
 * {@link SharedSystemAllocator.releaseAll} if nobody takes over those devices.
 */
import { AllocatorError } from "../core/errors.js";
import type { RangeInclusive } from "../core/range.js";
import type { AddrAllocateFunc, AddrAllocateParams, HoldingsFunc, IdAllocateFunc, IdAllocateParams, OutsideFunc } from "../system/allocation-callbacks.js";
import { DEFAULT_LAYOUT_NAME, LAYOUTS, type PoolName, type SystemLayout, type SystemLayoutJSON } from "../system/layouts.js";
import type { SystemAllocator } from "../system/system-allocator-interface.js";
import { DefaultSystemAllocator, type Holding, type ReserveTarget, type SystemAllocatorSnapshot } from "../system/system-allocator.js";
import { decodeOperation, encodeArguments, entryText, type SharedOperation, type SharedOperationName } from "./operation-codec.js";
import { acquireLock, releaseLock, releaseLockOf } from "./shared-lock.js";

/** The `format` of a {@link SharedSystemAllocatorHandle}. */
export const SHARED_SYSTEM_ALLOCATOR_FORMAT = "vm-allocator/shared-system-allocator";

/**
 * What a thread needs to attach to a shared system allocator: post it to a worker
 * (`worker.postMessage(shared.handle)`, or in `workerData`); it survives the structured clone,
 * and the buffer it carries is shared, not copied.
 */
export interface SharedSystemAllocatorHandle {
  /** Always {@link SHARED_SYSTEM_ALLOCATOR_FORMAT}. */
  readonly format: typeof SHARED_SYSTEM_ALLOCATOR_FORMAT;
  /** The memory every participant reads and writes. */
  readonly buffer: SharedArrayBuffer;
}

/** Sizes of the shared buffer, for {@link SharedSystemAllocator.create}. */
export interface SharedSystemAllocatorOptions {
  /**
   * Bytes of each of the two operation logs (default 1 MiB). A call whose entry is larger than a
   * whole log is refused; a full log costs a checkpoint.
   */
  readonly logBytes?: number;
  /**
   * Bytes of each of the two checkpoints (default: 16 times the initial state, at least 256 KiB).
   * The state grows with what is held; a call that needs a checkpoint which no longer fits is
   * refused with `ResourceNotAvailable`.
   */
  readonly checkpointBytes?: number;
  /** Milliseconds a call of this participant waits for the lock before it throws (default 10 000). */
  readonly lockTimeoutMs?: number;
}

/** Options of {@link SharedSystemAllocator.attach}. */
export interface SharedSystemAllocatorAttachOptions {
  /**
   * The participant id to attach as, taken earlier with
   * {@link SharedSystemAllocator.reserveParticipantId} by the supervising thread, so that it can
   * recover the lock even when the worker dies while attaching. Default: a new id.
   */
  readonly participantId?: number;
  /** Milliseconds a call of this participant waits for the lock before it throws (default 10 000). */
  readonly lockTimeoutMs?: number;
}

/** What {@link SharedSystemAllocator.committedLog} returns. */
export interface SharedCommittedLog {
  /** The active checkpoint, in `DefaultSystemAllocator`'s snapshot format. */
  readonly checkpoint: SystemAllocatorSnapshot;
  /** The sequence number of the last operation the checkpoint includes (0: none). */
  readonly checkpointSequence: number;
  /** The operations committed after the checkpoint, in commit order. */
  readonly operations: readonly SharedOperation[];
}

// ---- the buffer -------------------------------------------------------------------------------
// Int32 words of the header; the slot words come in pairs, indexed by slot (0 or 1).
const MAGIC = 0;
const VERSION = 1;
const LOCK = 2;
const EPOCH = 3;
const PARTICIPANTS = 4;
const CHECKPOINT_BYTES = 5;
const LOG_BYTES = 6;
const LOG_LENGTH = 8;
const CHECKPOINT_LENGTH = 10;
/** Float64 index (over the header) of the sequence number each slot's checkpoint stands at. */
const SEQUENCE_BASE = 6;
const HEADER_BYTES = 64;
const MAGIC_VALUE = 0x564d4153; // "VMAS"
const VERSION_VALUE = 1;

const DEFAULT_LOG_BYTES = 1 << 20;
const MIN_CHECKPOINT_BYTES = 256 << 10;
const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
/** The largest region the header can describe; keeps the whole buffer below 2^31 bytes. */
const MAX_REGION_BYTES = 1 << 29;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Where this thread encodes a log entry before copying it into the log; grows as needed. */
let scratch = new Uint8Array(4096);

const align8 = (n: number): number => Math.ceil(n / 8) * 8;
const align4 = (n: number): number => Math.ceil(n / 4) * 4;

function invalid(message: string): AllocatorError {
  return new AllocatorError("InvalidArgument", message);
}

function regionSize(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 64 || value > MAX_REGION_BYTES) {
    throw invalid(`options.${name} must be an integer from 64 to ${MAX_REGION_BYTES}, got ${String(value)}`);
  }
  return align8(value);
}

function timeout(value: unknown): number {
  if (value === undefined) return DEFAULT_LOCK_TIMEOUT_MS;
  if (typeof value !== "number" || !(value > 0)) throw invalid(`options.lockTimeoutMs must be a positive number, got ${String(value)}`);
  return value;
}

function isSharedArrayBuffer(value: unknown): value is SharedArrayBuffer {
  return Object.prototype.toString.call(value) === "[object SharedArrayBuffer]";
}

function requireSharedMemory(): void {
  if (typeof SharedArrayBuffer !== "function" || typeof Atomics !== "object") {
    throw new AllocatorError("InvalidState", "SharedArrayBuffer is unavailable here: a browser page must be cross-origin isolated (COOP/COEP headers)");
  }
}

/**
 * A system allocator shared by every thread that attaches to it: same callbacks, results, errors
 * and owner rules as {@link DefaultSystemAllocator}, each call atomic across threads.
 *
 * ```ts
 * // main thread
 * const shared = SharedSystemAllocator.create(getLayout("pc-x86_64"));
 * const id = shared.reserveParticipantId();
 * const worker = new Worker("./disk-worker.js", { type: "module" });
 * worker.postMessage({ handle: shared.handle, id });
 * worker.addEventListener("error", () => shared.recoverFrom(id)); // and after worker.terminate()
 *
 * // disk-worker.js
 * onmessage = ({ data }) => {
 *   const sys = SharedSystemAllocator.attach(data.handle, { participantId: data.id });
 *   const dm = DeviceManager.fromSystemAllocator(sys); // a device manager of this worker
 *   const mmio = sys.mmioAddressCallback()({ action: "allocate", owner: "virtio-blk@0", size: 0x1000n });
 * };
 * ```
 */
export class SharedSystemAllocator implements SystemAllocator {
  readonly #buffer: SharedArrayBuffer;
  readonly #words: Int32Array;
  readonly #sequenceBase: Float64Array;
  readonly #all: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #checkpointBytes: number;
  readonly #logBytes: number;
  readonly #id: number;
  readonly #timeoutMs: number;
  /** The local replica; valid for (#epoch, #offset, #sequence). */
  #replica!: DefaultSystemAllocator;
  /** The epoch the replica was loaded at; NaN forces a reload. */
  #epoch = Number.NaN;
  /** Bytes of the active log the replica has applied. */
  #offset = 0;
  /** Sequence number of the last operation the replica has applied. */
  #sequence = 0;
  #lastCommit = 0;
  readonly #hasPio: boolean;
  readonly #deviceIdCallback: IdAllocateFunc = (params) => this.#mutate("deviceId", [params]) as number | null;
  readonly #irqCallback: IdAllocateFunc = (params) => this.#mutate("irq", [params]) as number | null;
  readonly #pioCallback: AddrAllocateFunc = (params) => this.#mutate("pio", [params]) as RangeInclusive | null;
  readonly #mmioCallback: AddrAllocateFunc = (params) => this.#mutate("mmio", [params]) as RangeInclusive | null;
  readonly #holdingsCallback: HoldingsFunc = (owner) => this.#read((r) => r.holdingsCallback()(owner));
  readonly #outsideCallback: OutsideFunc = (query) => this.#read((r) => r.outsideCallback()(query));

  private constructor(buffer: SharedArrayBuffer, id: number, timeoutMs: number) {
    this.#buffer = buffer;
    this.#words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.#sequenceBase = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    this.#all = new Int32Array(buffer);
    this.#bytes = new Uint8Array(buffer);
    this.#checkpointBytes = this.#words[CHECKPOINT_BYTES]!;
    this.#logBytes = this.#words[LOG_BYTES]!;
    this.#id = id;
    this.#timeoutMs = timeoutMs;
    // Loads the replica (and so validates the checkpoint) under the lock.
    this.#read(() => undefined);
    this.#hasPio = this.#replica.hasPool("pio");
  }

  /**
   * Puts a new system allocator in shared memory and attaches the calling thread to it.
   * @param source a layout (default: the `firecracker-x86_64` preset) or an allocator whose
   *   current state to start from (it is copied; the shared allocator never touches it again),
   *   such as `DefaultSystemAllocator.fromJSON(snapshot)` to restore a snapshot.
   * @throws AllocatorError `InvalidArgument` for bad options or sizes the platform cannot
   *   allocate, `ResourceNotAvailable` when the state does not fit `checkpointBytes`, the
   *   layout's errors for a bad layout, and `InvalidState` where `SharedArrayBuffer` is
   *   unavailable (a browser page that is not cross-origin isolated).
   */
  static create(source: SystemLayout | DefaultSystemAllocator = LAYOUTS[DEFAULT_LAYOUT_NAME], options: SharedSystemAllocatorOptions = {}): SharedSystemAllocator {
    requireSharedMemory();
    if (typeof options !== "object" || options === null) throw invalid("options must be an object");
    const initial = source instanceof DefaultSystemAllocator ? source : new DefaultSystemAllocator(source);
    const checkpoint = encoder.encode(JSON.stringify(initial.toJSON()));
    const logBytes = regionSize(options.logBytes, "logBytes", DEFAULT_LOG_BYTES);
    const checkpointBytes = regionSize(options.checkpointBytes, "checkpointBytes", Math.min(MAX_REGION_BYTES, align8(Math.max(MIN_CHECKPOINT_BYTES, 16 * checkpoint.length))));
    const timeoutMs = timeout(options.lockTimeoutMs);
    if (checkpoint.length > checkpointBytes) {
      throw new AllocatorError("ResourceNotAvailable", `the initial state takes ${checkpoint.length} bytes, more than options.checkpointBytes (${checkpointBytes})`);
    }
    let buffer: SharedArrayBuffer;
    try {
      buffer = new SharedArrayBuffer(HEADER_BYTES + 2 * (checkpointBytes + logBytes));
    } catch (error) {
      throw new AllocatorError("InvalidArgument", `could not allocate a shared buffer of ${HEADER_BYTES + 2 * (checkpointBytes + logBytes)} bytes`, { cause: error });
    }
    const words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    words[VERSION] = VERSION_VALUE;
    words[CHECKPOINT_BYTES] = checkpointBytes;
    words[LOG_BYTES] = logBytes;
    words[CHECKPOINT_LENGTH] = checkpoint.length;
    words[PARTICIPANTS] = 1;
    new Uint8Array(buffer, HEADER_BYTES, checkpointBytes).set(checkpoint);
    // Last, so that a half-written buffer is never mistaken for a valid one.
    Atomics.store(words, MAGIC, MAGIC_VALUE);
    return new SharedSystemAllocator(buffer, 1, timeoutMs);
  }

  /**
   * Attaches the calling thread (a worker, or any thread) to a shared allocator another thread
   * created, loading its current state.
   * @throws AllocatorError `InvalidArgument` for a handle that is not one (wrong format, not a
   *   `SharedArrayBuffer`, a buffer of the wrong size or layout) or a participant id that was not
   *   reserved; `InvalidSnapshot` when the shared state cannot be read; `InvalidState` when the
   *   lock stays held longer than the timeout.
   */
  static attach(handle: SharedSystemAllocatorHandle, options: SharedSystemAllocatorAttachOptions = {}): SharedSystemAllocator {
    requireSharedMemory();
    if (typeof handle !== "object" || handle === null) throw invalid("handle must be a shared system allocator handle { format, buffer }");
    if (handle.format !== SHARED_SYSTEM_ALLOCATOR_FORMAT) throw invalid(`handle.format must be "${SHARED_SYSTEM_ALLOCATOR_FORMAT}", got ${JSON.stringify(String(handle.format))}`);
    const buffer: unknown = handle.buffer;
    if (!isSharedArrayBuffer(buffer)) throw invalid("handle.buffer must be a SharedArrayBuffer");
    if (buffer.byteLength < HEADER_BYTES || buffer.byteLength % 8 !== 0) throw invalid(`handle.buffer has ${buffer.byteLength} bytes: not a shared system allocator`);
    if (typeof options !== "object" || options === null) throw invalid("options must be an object");
    const words = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    if (Atomics.load(words, MAGIC) !== MAGIC_VALUE) throw invalid("handle.buffer is not a shared system allocator (bad magic)");
    if (words[VERSION] !== VERSION_VALUE) throw invalid(`handle.buffer has version ${words[VERSION]!}; this library reads version ${VERSION_VALUE}`);
    const ck = words[CHECKPOINT_BYTES]!;
    const log = words[LOG_BYTES]!;
    if (!(ck >= 64 && log >= 64 && ck % 8 === 0 && log % 8 === 0 && HEADER_BYTES + 2 * (ck + log) === buffer.byteLength)) {
      throw invalid("handle.buffer's header does not match its size: not a shared system allocator");
    }
    const timeoutMs = timeout(options.lockTimeoutMs);
    let id: number;
    if (options.participantId === undefined) {
      id = Atomics.add(words, PARTICIPANTS, 1) + 1;
    } else {
      id = options.participantId;
      if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id > Atomics.load(words, PARTICIPANTS)) {
        throw invalid(`options.participantId must be an id reserveParticipantId() returned, got ${String(id)}`);
      }
    }
    return new SharedSystemAllocator(buffer, id, timeoutMs);
  }

  /** The handle to post to another thread so that it can {@link attach}. */
  get handle(): SharedSystemAllocatorHandle {
    return { format: SHARED_SYSTEM_ALLOCATOR_FORMAT, buffer: this.#buffer };
  }

  /** The shared memory (also in {@link handle}). */
  get buffer(): SharedArrayBuffer {
    return this.#buffer;
  }

  /** This thread's participant id: what the lock word holds while this participant has it. */
  get participantId(): number {
    return this.#id;
  }

  /**
   * The commit sequence number of the last call this participant committed (0 before any): calls
   * of all participants are numbered 1, 2, 3, ... in the order they took effect.
   */
  get lastCommitSequence(): number {
    return this.#lastCommit;
  }

  /**
   * Takes a new participant id for a worker that is about to {@link attach} with it, so that the
   * supervising thread knows whom to {@link recoverFrom} even if the worker dies while attaching.
   */
  reserveParticipantId(): number {
    return Atomics.add(this.#words, PARTICIPANTS, 1) + 1;
  }

  /**
   * Recovery after a participant's thread ended (a worker's `exit` event in Node, after
   * `worker.terminate()` or an `error` event in a browser): releases the lock if that participant
   * died holding it, so that the others can go on. Call it only for a participant whose thread
   * has ended: releasing the lock of a live one breaks mutual exclusion. What the dead
   * participant allocated stays held under its owners (free it with {@link releaseAll}).
   * @returns true when the lock was held by `participantId` and is now free.
   * @throws AllocatorError `InvalidArgument` when `participantId` is not a positive integer.
   */
  recoverFrom(participantId: number): boolean {
    if (typeof participantId !== "number" || !Number.isInteger(participantId) || participantId < 1 || participantId > 0x7fffffff) {
      throw invalid(`participantId must be a positive integer, got ${String(participantId)}`);
    }
    return releaseLockOf(this.#words, LOCK, participantId);
  }

  // ---- the SystemAllocator interface ------------------------------------------------------------

  /** As {@link DefaultSystemAllocator.deviceIdCallback}; each call is atomic across threads. */
  deviceIdCallback(): IdAllocateFunc {
    return this.#deviceIdCallback;
  }

  /** As {@link DefaultSystemAllocator.irqCallback}; each call is atomic across threads. */
  irqCallback(): IdAllocateFunc {
    return this.#irqCallback;
  }

  /** As {@link DefaultSystemAllocator.pioAddressCallback}; each call is atomic across threads. */
  pioAddressCallback(): AddrAllocateFunc | undefined {
    return this.#hasPio ? this.#pioCallback : undefined;
  }

  /** As {@link DefaultSystemAllocator.mmioAddressCallback}; each call is atomic across threads. */
  mmioAddressCallback(): AddrAllocateFunc {
    return this.#mmioCallback;
  }

  /** As {@link DefaultSystemAllocator.holdingsCallback}, reading the current shared state. */
  holdingsCallback(): HoldingsFunc {
    return this.#holdingsCallback;
  }

  /** As {@link DefaultSystemAllocator.outsideCallback}: whether a value lies outside every pool. */
  outsideCallback(): OutsideFunc {
    return this.#outsideCallback;
  }

  // ---- the rest of DefaultSystemAllocator's API -------------------------------------------------

  /** The layout's `name`, if it has one. */
  get name(): string | undefined {
    return this.#replica.name;
  }

  /** The layout, in canonical JSON form (frozen). */
  get layout(): SystemLayoutJSON {
    return this.#replica.layout;
  }

  /** True when the layout has `pool`. */
  hasPool(pool: PoolName): boolean {
    return this.#replica.hasPool(pool);
  }

  /** As {@link DefaultSystemAllocator.reserve}, atomic across threads. */
  reserve(pool: PoolName, target: ReserveTarget, owner: string): Holding[] {
    return this.#mutate("reserve", [pool, target, owner]) as Holding[];
  }

  /** As {@link DefaultSystemAllocator.unreserve}, atomic across threads. */
  unreserve(pool: PoolName, target: ReserveTarget): Holding[] {
    return this.#mutate("unreserve", [pool, target]) as Holding[];
  }

  /** As {@link DefaultSystemAllocator.releaseAll}, atomic across threads (also for a dead worker's owners). */
  releaseAll(owner: string): Holding[] {
    return this.#mutate("releaseAll", [owner]) as Holding[];
  }

  /** As {@link DefaultSystemAllocator.holdings}, of the current shared state. */
  holdings(): Holding[] {
    return this.#read((r) => r.holdings());
  }

  /** As {@link DefaultSystemAllocator.reservations}, of the current shared state. */
  reservations(): Holding[] {
    return this.#read((r) => r.reservations());
  }

  /** As {@link DefaultSystemAllocator.allocationsOf}, of the current shared state. */
  allocationsOf(owner: string): Holding[] {
    return this.#read((r) => r.allocationsOf(owner));
  }

  /** As {@link DefaultSystemAllocator.owners}, of the current shared state. */
  owners(): string[] {
    return this.#read((r) => r.owners());
  }

  /**
   * A consistent snapshot of the shared state in `DefaultSystemAllocator`'s format, taken while
   * other threads keep running (they wait for the lock for as long as it takes to copy).
   * `SharedSystemAllocator.create(DefaultSystemAllocator.fromJSON(snapshot))` restores it.
   */
  toJSON(): SystemAllocatorSnapshot {
    return this.#read((r) => r.toJSON());
  }

  /**
   * A single-thread copy of the shared state now, as a `DefaultSystemAllocator`: its pool views
   * (`mmio32.freeRanges()`, `legacyIrq.isAllocated(5)`) answer what this class leaves out.
   */
  toDefaultAllocator(): DefaultSystemAllocator {
    return this.#read((r) => r.clone());
  }

  /**
   * The active checkpoint and the operations committed since, in commit order, decoded: what
   * every participant's replica is built from. For tests and debugging; replaying `operations`
   * on `DefaultSystemAllocator.fromJSON(checkpoint)` gives the current state.
   */
  committedLog(): SharedCommittedLog {
    return this.#read(() => {
      const slot = this.#epoch & 1;
      const operations: SharedOperation[] = [];
      for (let at = 0; at < this.#offset; ) {
        const { text, next } = this.#entryAt(slot, at, this.#offset);
        operations.push(decodeOperation(text));
        at = next;
      }
      return { checkpoint: this.#checkpointSnapshot(slot) as SystemAllocatorSnapshot, checkpointSequence: this.#sequenceBase[SEQUENCE_BASE + slot]!, operations };
    });
  }

  /**
   * Verifies the shared state: the replica's invariants (as
   * {@link DefaultSystemAllocator.checkValid}), and that a replica rebuilt from the shared
   * checkpoint and log equals this participant's. Linear in what is held; meant for tests.
   * @throws AllocatorError `InvalidState` describing the first violation.
   */
  checkValid(): void {
    this.#read((r) => {
      r.checkValid();
      const fresh = this.#rebuild();
      if (fresh.sequence !== this.#sequence || JSON.stringify(fresh.replica.toJSON()) !== JSON.stringify(r.toJSON())) {
        throw new AllocatorError("InvalidState", `shared system allocator is corrupt: participant ${this.#id}'s replica differs from the shared checkpoint and log`);
      }
    });
  }

  // ---- the machinery -----------------------------------------------------------------------------

  #slotStart(slot: number): number {
    return HEADER_BYTES + slot * (this.#checkpointBytes + this.#logBytes);
  }

  /** Reads the entry at `at` of `slot`'s log, which is committed up to `end`. */
  #entryAt(slot: number, at: number, end: number): { text: string; next: number } {
    const start = this.#slotStart(slot) + this.#checkpointBytes + at;
    const length = this.#all[start / 4]!;
    const next = at + 4 + align4(length);
    if (!(length > 0 && next <= end)) throw new Error(`the log entry at ${at} has a bad length ${length}`);
    // TextDecoder refuses views of shared memory: decode a private copy.
    return { text: decoder.decode(this.#bytes.slice(start + 4, start + 4 + length)), next };
  }

  /** The parsed (not yet validated) checkpoint of `slot`. */
  #checkpointSnapshot(slot: number): unknown {
    const length = Atomics.load(this.#words, CHECKPOINT_LENGTH + slot);
    if (!(length > 0 && length <= this.#checkpointBytes)) throw new AllocatorError("InvalidSnapshot", `the shared checkpoint has a bad length ${length}`);
    const start = this.#slotStart(slot);
    try {
      return JSON.parse(decoder.decode(this.#bytes.slice(start, start + length)));
    } catch (error) {
      throw new AllocatorError("InvalidSnapshot", "the shared checkpoint is not JSON", { cause: error });
    }
  }

  /** Loads the checkpoint of the current epoch and replays its log up to the committed end. */
  #rebuild(): { replica: DefaultSystemAllocator; epoch: number; sequence: number; offset: number } {
    const epoch = Atomics.load(this.#words, EPOCH);
    const slot = epoch & 1;
    const replica = DefaultSystemAllocator.fromJSON(this.#checkpointSnapshot(slot));
    const base = this.#sequenceBase[SEQUENCE_BASE + slot]!;
    const state = { replica, epoch, sequence: base, offset: 0 };
    this.#replay(state, slot);
    return state;
  }

  /** Applies the entries of `slot`'s log past `state.offset`. */
  #replay(state: { replica: DefaultSystemAllocator; sequence: number; offset: number }, slot: number): void {
    const end = Atomics.load(this.#words, LOG_LENGTH + slot);
    if (!(end >= 0 && end <= this.#logBytes)) throw diverged(`the log length ${end} is out of bounds`);
    while (state.offset < end) {
      let op: SharedOperation;
      let next: number;
      try {
        const entry = this.#entryAt(slot, state.offset, end);
        op = decodeOperation(entry.text);
        next = entry.next;
      } catch (error) {
        throw diverged(error instanceof Error ? error.message : String(error), error);
      }
      if (op.sequence !== state.sequence + 1) throw diverged(`expected operation ${state.sequence + 1}, found ${op.sequence}`);
      try {
        run(state.replica, op.operation, op.args);
      } catch (error) {
        throw diverged(`replaying operation ${op.sequence} (${op.operation}) failed: ${error instanceof Error ? error.message : String(error)}`, error);
      }
      state.offset = next;
      state.sequence = op.sequence;
    }
  }

  /** Brings the replica up to date; the caller holds the lock. */
  #catchUp(): void {
    const epoch = Atomics.load(this.#words, EPOCH);
    try {
      if (epoch !== this.#epoch) {
        const fresh = this.#rebuild();
        this.#replica = fresh.replica;
        this.#epoch = fresh.epoch;
        this.#sequence = fresh.sequence;
        this.#offset = fresh.offset;
        return;
      }
      const state = { replica: this.#replica, sequence: this.#sequence, offset: this.#offset };
      try {
        this.#replay(state, epoch & 1);
      } finally {
        this.#sequence = state.sequence;
        this.#offset = state.offset;
      }
    } catch (error) {
      // Whatever was half applied, the next call starts again from the checkpoint.
      this.#epoch = Number.NaN;
      throw error;
    }
  }

  #read<T>(query: (replica: DefaultSystemAllocator) => T): T {
    acquireLock(this.#words, LOCK, this.#id, this.#timeoutMs);
    try {
      this.#catchUp();
      return query(this.#replica);
    } finally {
      releaseLock(this.#words, LOCK, this.#id);
    }
  }

  #mutate(operation: SharedOperationName, args: readonly unknown[]): unknown {
    // Outside the lock: a getter of the caller's may run here, even one that calls back into us.
    // The replica runs on the copy, which is exactly what the others will replay, not on the
    // caller's objects.
    const { text: encoded, copy: decoded } = encodeArguments(args);
    acquireLock(this.#words, LOCK, this.#id, this.#timeoutMs);
    try {
      this.#catchUp();
      const sequence = this.#sequence + 1;
      const text = entryText(sequence, operation, encoded);
      const slot = this.#epoch & 1;
      const start = this.#slotStart(slot) + this.#checkpointBytes + this.#offset;
      // Browsers refuse to encode into shared memory: encode into private memory, then copy.
      if (scratch.length < text.length * 3) scratch = new Uint8Array(Math.max(text.length * 3, 2 * scratch.length));
      const written = encoder.encodeInto(text, scratch).written;
      const need = 4 + align4(written);
      if (need > this.#logBytes) {
        throw invalid(`this call's log entry takes ${need} bytes, more than the whole log (${this.#logBytes}); create the shared allocator with a larger logBytes`);
      }
      const fits = this.#offset + need <= this.#logBytes;
      // Written past the committed end, so invisible to the others until the commit below (and
      // overwritten by the next call if this one fails).
      if (fits) this.#bytes.set(scratch.subarray(0, written), start + 4);
      let result: unknown;
      try {
        result = run(this.#replica, operation, decoded);
      } catch (error) {
        // An AllocatorError changed nothing; anything else may have, so reload before the next call.
        if (!(error instanceof AllocatorError)) this.#epoch = Number.NaN;
        throw error;
      }
      if (!fits) {
        // The log is full: the new state, this call included, becomes the next checkpoint (so a
        // free still works when the state before it no longer fits).
        try {
          this.#checkpoint(sequence);
        } catch (error) {
          // Not committed: forget the call by reloading the shared state before the next one.
          this.#epoch = Number.NaN;
          throw error;
        }
      } else {
        this.#all[start / 4] = written;
        const end = this.#offset + need;
        // The commit: one atomic store. Dying before it leaves nothing behind.
        Atomics.store(this.#words, LOG_LENGTH + slot, end);
        this.#offset = end;
      }
      this.#sequence = sequence;
      this.#lastCommit = sequence;
      return result;
    } finally {
      releaseLock(this.#words, LOCK, this.#id);
    }
  }

  /**
   * Writes the replica's state, which includes the operations up to `sequence`, as the other
   * slot's checkpoint with an empty log, and makes it current; under the lock.
   */
  #checkpoint(sequence: number): void {
    const bytes = encoder.encode(JSON.stringify(this.#replica.toJSON()));
    if (bytes.length > this.#checkpointBytes) {
      throw new AllocatorError(
        "ResourceNotAvailable",
        `the shared system allocator's state (${bytes.length} bytes) no longer fits its checkpoint (${this.#checkpointBytes} bytes); create it with a larger checkpointBytes`,
      );
    }
    const epoch = (this.#epoch + 1) | 0;
    const slot = epoch & 1;
    this.#bytes.set(bytes, this.#slotStart(slot));
    Atomics.store(this.#words, CHECKPOINT_LENGTH + slot, bytes.length);
    Atomics.store(this.#words, LOG_LENGTH + slot, 0);
    this.#sequenceBase[SEQUENCE_BASE + slot] = sequence;
    // The commit: until this store the old epoch, its checkpoint and its log stay current.
    Atomics.store(this.#words, EPOCH, epoch);
    this.#epoch = epoch;
    this.#offset = 0;
  }
}

function diverged(why: string, cause?: unknown): AllocatorError {
  return new AllocatorError("InvalidState", `shared system allocator replicas diverged or its log is corrupt (a bug): ${why}`, cause === undefined ? undefined : { cause });
}

/** Runs one logged operation on a replica. */
function run(replica: DefaultSystemAllocator, operation: SharedOperationName, args: readonly unknown[]): unknown {
  switch (operation) {
    case "deviceId":
      return replica.deviceIdCallback()(args[0] as IdAllocateParams);
    case "irq":
      return replica.irqCallback()(args[0] as IdAllocateParams);
    case "pio": {
      const pio = replica.pioAddressCallback();
      if (pio === undefined) throw invalid("this layout has no port I/O");
      return pio(args[0] as AddrAllocateParams);
    }
    case "mmio":
      return replica.mmioAddressCallback()(args[0] as AddrAllocateParams);
    case "reserve":
      return replica.reserve(args[0] as PoolName, args[1] as ReserveTarget, args[2] as string);
    case "unreserve":
      return replica.unreserve(args[0] as PoolName, args[1] as ReserveTarget);
    case "releaseAll":
      return replica.releaseAll(args[0] as string);
  }
}
