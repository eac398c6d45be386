/** Assertion helpers shared by the tests. */
import assert from "node:assert/strict";
import { AllocatorError } from "../../src/core/errors.js";

/**
 * A predicate for `assert.throws`: the error is an AllocatorError with code `c` and, when given,
 * a message matching `message`.
 */
export const code = (c: string, message?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AllocatorError, `expected AllocatorError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message !== undefined) assert.match(e.message, message);
  return true;
};
