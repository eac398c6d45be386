/**
 * Number formatting shared by the renderers: addresses as zero-padded hex, sizes for people.
 */

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/** Lower-case hex without prefix, zero-padded to at least `width` digits (more when needed). */
export function hexDigits(value: bigint, width: number): string {
  return value.toString(16).padStart(width, "0");
}

/** How many hex digits `value` needs. */
export function hexWidth(value: bigint): number {
  return value.toString(16).length;
}

/**
 * A size in binary units: exact when it is a whole number of the largest unit that fits
 * (`4 KiB`, `16 EiB`), otherwise rounded to two decimals and marked `~` (`~751.99 MiB`), since
 * the exact value is always printed next to it as a range. Below 1 KiB, bytes.
 */
export function humanBytes(size: bigint): string {
  if (size < 1024n) return `${size} B`;
  let unit = 0;
  let scale = 1024n;
  while (unit < UNITS.length - 1 && size >= scale * 1024n) {
    scale *= 1024n;
    unit++;
  }
  const name = UNITS[unit]!;
  if (size % scale === 0n) return `${size / scale} ${name}`;
  // Two decimals, rounded half up, in exact integer arithmetic.
  const hundredths = (size * 100n + scale / 2n) / scale;
  const whole = hundredths / 100n;
  const frac = (hundredths % 100n).toString().padStart(2, "0");
  return `~${whole}.${frac} ${name}`;
}

/** A size of an address space of `kind`: bytes for memory, a count for ports. */
export function humanSize(size: bigint, kind: "io" | "mem"): string {
  if (kind === "mem") return humanBytes(size);
  return size === 1n ? "1 port" : `${size} ports`;
}
