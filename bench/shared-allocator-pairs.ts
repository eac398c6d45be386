/** The allocate+free pairs bench/shared-allocator.bench.ts times, on any SystemAllocator. */
import type { SystemAllocator } from "../src/system/system-allocator-interface.js";

/** `n` MMIO 4 KiB allocate+free pairs through the callbacks. */
export function mmioPairs(sys: SystemAllocator, owner: string): (n: number) => void {
  const mmio = sys.mmioAddressCallback()!;
  return (n) => {
    for (let i = 0; i < n; i++) {
      const range = mmio({ action: "allocate", owner, size: 0x1000n, alignment: 0x1000n })!;
      mmio({ action: "free", owner, range });
    }
  };
}

/** `n` MSI allocate+free pairs through the IRQ callback (the MSI pool: enough lines for every worker). */
export function irqPairs(sys: SystemAllocator, owner: string): (n: number) => void {
  const irq = sys.irqCallback()!;
  return (n) => {
    for (let i = 0; i < n; i++) {
      const id = irq({ action: "allocate", owner, pool: "msi" })!;
      irq({ action: "free", owner, id, pool: "msi" });
    }
  };
}
