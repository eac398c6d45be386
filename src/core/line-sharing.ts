/**
 * The sharing rule of a legacy interrupt line, in one place: the system allocator applies it to
 * the lines it holds (`system/claims.ts`), and the device manager to every line its devices hold,
 * those no allocator sees included (`devices/device-records.ts`), so both must say the same.
 *
 * A line is shared only when every holder says so: a new holder joins when the line's holders
 * share it and the newcomer does too; an owner never holds one line twice.
 */

/**
 * Why `owner` (sharing or not) cannot join a line held by `holders` (who share it when
 * `lineShared`), as the end of an `Overlap` message; undefined when it can.
 */
export function lineSharingConflict(holders: readonly string[], lineShared: boolean, owner: string, shared: boolean): string | undefined {
  if (holders.length === 0) return undefined;
  if (holders.includes(owner)) return `already held by ${owner}`;
  if (!lineShared) return `held by ${holders[0]!}, which does not share it`;
  if (!shared) return `shared by ${holders.join(", ")}; pass shared: true to share it`;
  return undefined;
}
