export { AllocatorError, AllocatorErrorCode, isAllocatorError } from "./errors.js";
export { hex, isPowerOfTwo, parseHexU64, toU32, toU64, U32_MAX, U64_MAX, type U32Input, type U64Input } from "./u64.js";
export { formatRange, RangeInclusive, type RangeKind } from "./range.js";
export * from "./resource.js";
export * from "./allocation-callbacks.js";
