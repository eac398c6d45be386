/**
 * Exported tables the library reads are read-only: a mutation throws (tests run as ES modules, so
 * in strict mode) and changes nothing the library does.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as api from "../src/index.js";
import {
  AddressAllocator,
  AllocatorErrorCode,
  AllocPolicy,
  DefaultSystemAllocator,
  DeviceManager,
  FIRECRACKER_X86_64,
  LAYOUTS,
  layoutNames,
  normalizeResourceRequests,
  PC_X86_64,
  POOL_NAMES,
  REQUEST_FIELDS,
  type Device,
} from "../src/index.js";

/** Every object reachable from `value` through own properties, with its path. */
function* objectsIn(value: unknown, path: string, seen = new Set<unknown>()): Generator<[string, object]> {
  if (typeof value !== "object" || value === null || seen.has(value)) return;
  seen.add(value);
  yield [path, value];
  for (const key of Reflect.ownKeys(value)) {
    yield* objectsIn((value as Record<PropertyKey, unknown>)[key], `${path}.${String(key)}`, seen);
  }
}

const device: Device = { name: "probe", read: () => {}, write: () => {} };

describe("exported tables are read-only", () => {
  it("every exported object and array, and everything inside it, is frozen", () => {
    let checked = 0;
    for (const [name, value] of Object.entries(api)) {
      if (typeof value !== "object" || value === null) continue;
      for (const [path, object] of objectsIn(value, name)) {
        assert.ok(Object.isFrozen(object), `${path} is not frozen`);
        checked++;
      }
    }
    // AllocatorErrorCode, AllocPolicy (and its two constants), REQUEST_FIELDS (and its five lists),
    // LAYOUTS, both presets and their parts, POOL_NAMES, layoutNames.
    assert.ok(checked >= 30, `only ${checked} exported objects found`);
  });

  it("REQUEST_FIELDS: a pushed field throws, and registration still refuses unknown fields", () => {
    assert.throws(() => (REQUEST_FIELDS.mmio as string[]).push("evil"), TypeError);
    assert.throws(() => {
      (REQUEST_FIELDS as Record<string, unknown>)["mmio"] = ["kind", "size", "evil"];
    }, TypeError);
    assert.throws(() => {
      (REQUEST_FIELDS as Record<string, unknown>)["gpu"] = ["kind"];
    }, TypeError);
    assert.ok(!REQUEST_FIELDS.mmio.includes("evil"));
    assert.ok(REQUEST_FIELDS.mmio.includes("size"));
    assert.throws(() => normalizeResourceRequests([{ kind: "mmio", size: 0x1000, evil: 1 }]), { code: "InvalidArgument", message: /unknown property "evil"/ });
    const dm = DeviceManager.fromSystemAllocator(new DefaultSystemAllocator());
    assert.throws(() => dm.fullRegisterDevice(device, [{ kind: "mmio", size: 0x1000, evil: 1 } as never]), { code: "InvalidArgument" });
    assert.equal(dm.size, 0);
  });

  it("AllocPolicy: replacing FirstMatch throws, and allocators keep placing first fit by default", () => {
    assert.throws(() => {
      (AllocPolicy as Record<string, unknown>)["FirstMatch"] = AllocPolicy.LastMatch;
    }, TypeError);
    assert.throws(() => {
      (AllocPolicy.FirstMatch as { kind: string }).kind = "LastMatch";
    }, TypeError);
    assert.throws(() => {
      (AllocPolicy as Record<string, unknown>)["ExactMatch"] = () => AllocPolicy.LastMatch;
    }, TypeError);
    const a = new AddressAllocator(0, 0x1000);
    assert.equal(a.allocate(0x10).start, 0n);
    assert.equal(AllocPolicy.ExactMatch(0x100).kind, "ExactMatch");
    assert.ok(Object.isFrozen(AllocPolicy.ExactMatch(0x100)));
  });

  it("AllocatorErrorCode: codes cannot be changed or added", () => {
    assert.throws(() => {
      (AllocatorErrorCode as Record<string, string>)["Overlap"] = "Fine";
    }, TypeError);
    assert.throws(() => {
      (AllocatorErrorCode as Record<string, string>)["Whatever"] = "Whatever";
    }, TypeError);
    assert.equal(AllocatorErrorCode.Overlap, "Overlap");
  });

  it("LAYOUTS, the presets and POOL_NAMES: no change reaches a new system allocator", () => {
    const before = JSON.stringify(new DefaultSystemAllocator().toJSON());
    assert.throws(() => {
      (LAYOUTS as Record<string, unknown>)["firecracker-x86_64"] = PC_X86_64;
    }, TypeError);
    assert.throws(() => {
      (FIRECRACKER_X86_64.mmio32 as { size: number }).size = 0x10;
    }, TypeError);
    assert.throws(() => (FIRECRACKER_X86_64.reserved as unknown[]).pop(), TypeError);
    assert.throws(() => {
      (PC_X86_64.reserved![0] as { owner: string }).owner = "evil";
    }, TypeError);
    assert.throws(() => (POOL_NAMES as string[]).push("gpu"), TypeError);
    assert.throws(() => (layoutNames as string[]).reverse(), TypeError);
    assert.equal(JSON.stringify(new DefaultSystemAllocator().toJSON()), before);
    assert.ok(!POOL_NAMES.includes("gpu" as never));
    assert.equal(POOL_NAMES[0], "pio");
  });
});
