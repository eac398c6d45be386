/**
 * The sharing rule of a legacy line, which the system allocator and the device manager both
 * apply (through this one function): every branch, and that both layers give the same answer.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lineSharingConflict } from "../../src/core/line-sharing.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";
import { getLayout } from "../../src/system/layouts.js";
import { DeviceManager } from "../../src/devices/device-manager.js";
import { AllocatorError } from "../../src/core/errors.js";

describe("lineSharingConflict", () => {
  it("a free line can be taken, shared or not", () => {
    assert.equal(lineSharingConflict([], false, "a@0", false), undefined);
    assert.equal(lineSharingConflict([], true, "a@0", true), undefined);
  });

  it("a shared line takes a newcomer that shares, and names every holder to one that does not", () => {
    assert.equal(lineSharingConflict(["a@0", "b@1"], true, "c@2", true), undefined);
    assert.equal(lineSharingConflict(["a@0", "b@1"], true, "c@2", false), "shared by a@0, b@1; pass shared: true to share it");
  });

  it("an unshared line takes nobody, and an owner never holds a line twice", () => {
    assert.equal(lineSharingConflict(["a@0"], false, "c@2", true), "held by a@0, which does not share it");
    assert.equal(lineSharingConflict(["a@0", "b@1"], true, "b@1", true), "already held by b@1");
    assert.equal(lineSharingConflict(["a@0"], false, "a@0", false), "already held by a@0");
  });

  it("the allocator and a device manager without an irq callback refuse a shared line for the same reason", () => {
    const reasons = (fixed: number, first: boolean, second: boolean): [string | undefined, string | undefined] => {
      const sys = new DefaultSystemAllocator(getLayout("firecracker-x86_64"));
      const irq = sys.irqCallback();
      irq({ action: "allocate", owner: "a@0", fixed, shared: first });
      let viaAllocator: string | undefined;
      try {
        irq({ action: "allocate", owner: "b@1", fixed, shared: second });
      } catch (e) {
        assert.ok(e instanceof AllocatorError && e.code === "Overlap");
        viaAllocator = e.message;
      }
      const dm = new DeviceManager();
      dm.fullRegisterDevice({ name: "a", read() {}, write() {} }, [{ kind: "instanceId", fixed: 0 }, { kind: "irq", fixed, shared: first }]);
      let viaManager: string | undefined;
      try {
        dm.fullRegisterDevice({ name: "b", read() {}, write() {} }, [{ kind: "instanceId", fixed: 1 }, { kind: "irq", fixed, shared: second }]);
      } catch (e) {
        assert.ok(e instanceof AllocatorError && e.code === "Overlap");
        viaManager = e.message;
      }
      return [viaAllocator, viaManager];
    };
    // A shared line: both go through the rule and give its words.
    const [a, m] = reasons(6, true, false);
    const why = lineSharingConflict(["a@0"], true, "b@1", false)!;
    assert.ok(a?.endsWith(why), `allocator: ${a}`);
    assert.ok(m?.endsWith(why), `manager: ${m}`);
    // An unshared holder: the manager gives the rule's words; the allocator holds such a line as
    // a plain id and says who holds it.
    for (const second of [false, true]) {
      const [a2, m2] = reasons(6, false, second);
      assert.ok(m2?.endsWith(lineSharingConflict(["a@0"], false, "b@1", second)!), `manager: ${m2}`);
      assert.equal(a2, "[irq 6] is already held by a@0");
    }
    assert.deepEqual(reasons(6, true, true), [undefined, undefined]);
  });
});
