/**
 * A mutual-exclusion lock in one `Int32` word of a `SharedArrayBuffer`: 0 when free, otherwise
 * the participant id of its holder, so that a supervisor who learns that a participant died can
 * release a lock it left held (and only then).
 *
 * Acquiring spins briefly with `Atomics.compareExchange`, then sleeps in `Atomics.wait` with a
 * short timeout where the thread may block (workers, Node's main thread); on a browser's main
 * thread, where `Atomics.wait` throws, it keeps spinning. Releasing stores 0 and wakes one waiter.
 */
import { AllocatorError } from "../core/errors.js";

/** How long one `Atomics.wait` sleeps before looking again (ms): a missed wake-up costs at most this. */
const WAIT_SLICE_MS = 2;
/** Compare-and-swap attempts before the first sleep: a holder usually finishes within them. */
const SPINS = 64;

let waitAllowed: boolean | undefined;

/** True when this thread may block in `Atomics.wait` (learnt once, by trying it). */
function canWait(): boolean {
  if (waitAllowed === undefined) {
    try {
      // A value that cannot match returns "not-equal" at once where waiting is allowed.
      const probe = new Int32Array(new SharedArrayBuffer(4));
      Atomics.wait(probe, 0, 1, 0);
      waitAllowed = true;
    } catch {
      waitAllowed = false;
    }
  }
  return waitAllowed;
}

/**
 * Takes the lock at `words[index]` for participant `self` (> 0).
 * @throws AllocatorError `InvalidState` when `self` already holds it (a re-entrant call), or when
 *   another participant has held it for longer than `timeoutMs` (a participant that died holding
 *   it must be recovered with {@link releaseLockOf}).
 */
export function acquireLock(words: Int32Array, index: number, self: number, timeoutMs: number): void {
  let holder = Atomics.compareExchange(words, index, 0, self);
  if (holder === 0) return;
  if (holder === self) throw new AllocatorError("InvalidState", `participant ${self} re-entered the shared system allocator while holding its lock`);
  const wait = canWait();
  const started = Date.now();
  for (let spin = 0; ; spin++) {
    if (spin >= SPINS) {
      if (wait) Atomics.wait(words, index, holder, WAIT_SLICE_MS);
      if ((spin & 63) === 0 && Date.now() - started > timeoutMs) {
        throw new AllocatorError(
          "InvalidState",
          `the shared system allocator's lock has been held by participant ${holder} for more than ${timeoutMs} ms; if that participant exited, call recoverFrom(${holder})`,
        );
      }
    }
    holder = Atomics.compareExchange(words, index, 0, self);
    if (holder === 0) return;
  }
}

/** Releases the lock `self` holds. */
export function releaseLock(words: Int32Array, index: number, self: number): void {
  if (Atomics.compareExchange(words, index, self, 0) !== self) {
    throw new AllocatorError("InvalidState", `participant ${self} released the shared system allocator's lock without holding it`);
  }
  Atomics.notify(words, index, 1);
}

/** Releases the lock if (and only if) `participant` holds it; returns whether it did. */
export function releaseLockOf(words: Int32Array, index: number, participant: number): boolean {
  if (participant === 0 || Atomics.compareExchange(words, index, participant, 0) !== participant) return false;
  Atomics.notify(words, index, 1);
  return true;
}
