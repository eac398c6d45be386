/**
 * Each preset against the source it imitates. The expected numbers are derived here, again, from
 * the constants of the cited source (each written out with its file and name), not read from
 * the preset: pool bounds, what is fixed, and where a standard list of devices, registered
 * through a `DeviceManager` on a `DefaultSystemAllocator` in the order the VMM attaches them,
 * lands.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { DeviceManager } from "../../src/devices/device-manager.js";
import type { Device, ResourceRequest } from "../../src/devices/device.js";
import { AllocatorError } from "../../src/core/errors.js";
import { getLayout, getPreset, layoutNames, resolveLayout, resolveParameters, type PoolName } from "../../src/system/layouts.js";
import { DefaultSystemAllocator } from "../../src/system/system-allocator.js";

const KiB = 1n << 10n;
const MiB = 1n << 20n;
const GiB = 1n << 30n;
const FOUR_GIB = 1n << 32n;

/** Inclusive bounds of every pool of a layout, as [start, end]. */
function bounds(layout: Parameters<typeof resolveLayout>[0]): Partial<Record<PoolName, [bigint, bigint]>> {
  const out: Partial<Record<PoolName, [bigint, bigint]>> = {};
  for (const [pool, b] of Object.entries(resolveLayout(layout).pools)) out[pool as PoolName] = [b.start, b.end];
  return out;
}
const span = (start: bigint, size: bigint): [bigint, bigint] => [start, start + size - 1n];
const ids = (first: number, last: number): [bigint, bigint] => [BigInt(first), BigInt(last)];

interface Placed {
  readonly name: string;
  readonly pio: [bigint, bigint][];
  readonly mmio: [bigint, bigint][];
  readonly irqs: number[];
  readonly msi: number[];
}

/** Registers `devices` in order on a fresh allocator for `layout` and returns what each holds. */
function place(layout: Parameters<typeof resolveLayout>[0], devices: readonly [string, readonly ResourceRequest[]][]): Map<string, Placed> {
  const sys = new DefaultSystemAllocator(layout as never);
  const dm = DeviceManager.fromSystemAllocator(sys);
  const out = new Map<string, Placed>();
  for (const [name, requests] of devices) {
    const device: Device = { name, read: () => undefined, write: () => undefined };
    const id = dm.fullRegisterDevice(device, requests);
    const held = dm.resourcesOf(id);
    const pair = (r: { range: { start: bigint; end: bigint } }): [bigint, bigint] => [r.range.start, r.range.end];
    out.set(name, { name, pio: held.pio.map(pair), mmio: held.mmio.map(pair), irqs: held.irqs.map((q) => q.irq), msi: held.msi.map((m) => m.gsi) });
  }
  sys.checkValid();
  return out;
}
const get = (m: Map<string, Placed>, name: string): Placed => m.get(name) ?? assert.fail(`${name} was not placed`);

describe("presets: registry and parameters", () => {
  it("every preset names its source, takes only its parameters, and builds a valid layout from its defaults", () => {
    for (const name of layoutNames) {
      const p = getPreset(name);
      assert.equal(p.name, name);
      assert.match(p.source, /^[\w-]+\/[\w-]+/);
      resolveLayout(p.layout(p.defaults));
      for (const param of ["ramSize", "physAddressBits"] as const) {
        const value = param === "ramSize" ? p.defaults.ramSize : p.defaults.physAddressBits;
        if (p.parameters.includes(param)) assert.deepEqual(resolveParameters(name, { [param]: value }), p.defaults);
        else assert.throws(() => resolveParameters(name, { [param]: value }), (e: unknown) => e instanceof AllocatorError && e.code === "InvalidArgument" && e.message.includes(`preset ${name}`));
      }
    }
  });

  it("refuses parameters out of range and unknown ones, naming the field", () => {
    const bad = (params: object, re: RegExp) => assert.throws(() => resolveParameters("pc-x86_64", params as never), (e: unknown) => e instanceof AllocatorError && e.code === "InvalidArgument" && re.test(e.message));
    bad({ ramSize: 0 }, /^parameters\.ramSize must be a multiple of 4 KiB/);
    bad({ ramSize: 4097 }, /^parameters\.ramSize/);
    bad({ ramSize: "0x1_0000_0000_0000_0000" }, /^parameters\.ramSize/);
    bad({ memory: 1 }, /^parameters has unknown field "memory"/);
    assert.throws(() => resolveParameters("cloud-hypervisor-x86_64", { physAddressBits: 35 }), /physAddressBits must be an integer from 36 to 52/);
    assert.throws(() => resolveParameters("cloud-hypervisor-x86_64", { physAddressBits: 40.5 }), /physAddressBits/);
    assert.throws(() => resolveParameters("firecracker-x86_64", { ramSize: 0x1000 }), /preset firecracker-x86_64 takes no parameters/);
    assert.throws(() => getLayout("nope", {}), (e: unknown) => e instanceof AllocatorError && e.code === "NotFound");
    // A layout computed for parameters that leave no room is refused with what to change.
    assert.throws(() => getLayout("cloud-hypervisor-x86_64", { ramSize: 64n * GiB, physAddressBits: 36 }), /give fewer RAM or more physAddressBits/);
    assert.throws(() => getLayout("crosvm-x86_64", { ramSize: 80n * GiB, physAddressBits: 36 }), /give fewer RAM or more physAddressBits/);
  });
});

describe("firecracker-x86_64 against firecracker-microvm/firecracker v1.16.1", () => {
  // src/vmm/src/arch/x86_64/layout.rs
  const MMIO32_MEM_START = FOUR_GIB - 1024n * MiB; // MMIO32_MEM_START = FIRST_ADDR_PAST_32BITS - MMIO32_MEM_SIZE
  const MMIO_LEN = 0x1000n; // src/vmm/src/device_manager/mmio.rs MMIO_LEN
  const MEM_32BIT_DEVICES_START = MMIO32_MEM_START + MMIO_LEN; // BOOT_DEVICE_MEM_START + MMIO_LEN
  const PCI_MMCONFIG_START = 0xfec0_0000n - (256n << 20n); // IOAPIC_ADDR - PCI_MMCONFIG_SIZE
  const MMIO64_MEM_START = 256n << 30n; // MMIO64_MEM_START
  const MMIO64_MEM_SIZE = 256n << 30n; // MMIO64_MEM_SIZE
  const PAST_64BITS_MMIO_SIZE = 512n << 30n; // PAST_64BITS_MMIO_SIZE
  const SYSTEM_MEM_START = 0x9fc00n; // SYSTEM_MEM_START
  const RSDP_ADDR = 0xe0000n; // RSDP_ADDR (SYSTEM_MEM_SIZE = RSDP_ADDR - SYSTEM_MEM_START)
  const GSI_LEGACY_START = 5; // GSI_LEGACY_START
  const GSI_LEGACY_END = 23; // GSI_LEGACY_END
  const GSI_MSI_END = 4095; // GSI_MSI_END
  const VMGENID_MEM_SIZE = 16n; // src/vmm/src/devices/acpi/vmgenid.rs VMGENID_MEM_SIZE (8-byte aligned)
  const VMCLOCK_SIZE = 0x1000n; // src/vmm/src/devices/acpi/vmclock.rs VMCLOCK_SIZE (aligned to itself)
  const PMEM_ALIGNMENT = 2n * MiB; // src/vmm/src/devices/virtio/pmem/device.rs Pmem::ALIGNMENT

  it("has the six pools of ResourceAllocator::new() and nothing reserved inside them", () => {
    const b = bounds(getLayout("firecracker-x86_64"));
    assert.deepEqual(b, {
      systemMemory: [SYSTEM_MEM_START, RSDP_ADDR - 1n],
      mmio32: [MEM_32BIT_DEVICES_START, PCI_MMCONFIG_START - 1n],
      mmio64: span(MMIO64_MEM_START, MMIO64_MEM_SIZE),
      pastMmio64: span(MMIO64_MEM_START + MMIO64_MEM_SIZE, PAST_64BITS_MMIO_SIZE),
      legacyIrq: ids(GSI_LEGACY_START, GSI_LEGACY_END),
      msi: ids(GSI_LEGACY_END + 1, GSI_MSI_END),
      instanceId: ids(0, 0xffff_ffff),
    });
    assert.deepEqual(resolveLayout(getLayout("firecracker-x86_64")).reserved, []);
  });

  it("places the devices of build_microvm_for_boot where Firecracker does", () => {
    // builder.rs attach order: balloon, block, net, pmem, vsock, entropy, then vmgenid, vmclock.
    // mmio.rs allocate_mmio_resources: the lowest legacy GSI, then MMIO_LEN at MMIO_LEN, FirstMatch.
    const virtio: ResourceRequest[] = [{ kind: "irq" }, { kind: "mmio", size: MMIO_LEN, alignment: MMIO_LEN }];
    const names = ["balloon", "blk0", "blk1", "net0", "pmem0", "vsock", "rng"];
    const placed = place(getLayout("firecracker-x86_64"), [
      // legacy.rs: COM1 and the i8042 at fixed ports, on GSIs below the legacy pool.
      ["com1", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4 }]],
      ["i8042", [{ kind: "pio", size: 5, fixed: 0x60 }, { kind: "irq", fixed: 1 }]],
      ...names.map((n): [string, ResourceRequest[]] => [n, n === "pmem0" ? [...virtio, { kind: "mmio", size: 256n * MiB, alignment: PMEM_ALIGNMENT, pool: "pastMmio64" }] : virtio]),
      ["vmgenid", [{ kind: "irq" }, { kind: "mmio", size: VMGENID_MEM_SIZE, alignment: 8, pool: "systemMemory", placement: "last" }]],
      ["vmclock", [{ kind: "mmio", size: VMCLOCK_SIZE, alignment: VMCLOCK_SIZE, pool: "systemMemory", placement: "last" }, { kind: "irq" }]],
    ]);
    names.forEach((n, i) => {
      const d = get(placed, n);
      assert.deepEqual(d.irqs, [GSI_LEGACY_START + i], `${n}: consecutive GSIs from GSI_LEGACY_START`);
      assert.deepEqual(d.mmio[0], span(MEM_32BIT_DEVICES_START + BigInt(i) * MMIO_LEN, MMIO_LEN));
    });
    assert.deepEqual(get(placed, "pmem0").mmio[1], span(MMIO64_MEM_START + MMIO64_MEM_SIZE, 256n * MiB), "pmem backing: first 2 MiB-aligned address past the 64-bit MMIO");
    // vmgenid: LastMatch puts its 16 bytes right below RSDP_ADDR.
    assert.deepEqual(get(placed, "vmgenid"), { name: "vmgenid", pio: [], mmio: [[RSDP_ADDR - VMGENID_MEM_SIZE, RSDP_ADDR - 1n]], irqs: [GSI_LEGACY_START + 7], msi: [] });
    // vmclock: the highest VMCLOCK_SIZE-aligned page free of vmgenid, one page lower.
    const topPage = ((RSDP_ADDR - VMCLOCK_SIZE) / VMCLOCK_SIZE) * VMCLOCK_SIZE;
    assert.deepEqual(get(placed, "vmclock").mmio, [span(topPage - VMCLOCK_SIZE, VMCLOCK_SIZE)]);
    assert.deepEqual(get(placed, "vmclock").irqs, [GSI_LEGACY_START + 8]);
    assert.deepEqual(get(placed, "com1").pio, [[0x3f8n, 0x3ffn]]);
  });
});

describe("firecracker-aarch64 against firecracker-microvm/firecracker v1.16.1", () => {
  // src/vmm/src/arch/aarch64/layout.rs
  const DRAM_MEM_START = 0x8000_0000n; // DRAM_MEM_START = SYSTEM_MEM_START
  const SYSTEM_MEM_SIZE = 0x20_0000n; // SYSTEM_MEM_SIZE
  const MMIO32_MEM_START = 1n << 30n; // MMIO32_MEM_START
  const MMIO_LEN = 0x1000n; // device_manager/mmio.rs MMIO_LEN
  const RTC_MEM_START = MMIO32_MEM_START + MMIO_LEN; // BOOT_DEVICE_MEM_START + MMIO_LEN
  const SERIAL_MEM_START = RTC_MEM_START + MMIO_LEN; // RTC_MEM_START + MMIO_LEN
  const MEM_32BIT_DEVICES_START = SERIAL_MEM_START + MMIO_LEN; // SERIAL_MEM_START + MMIO_LEN
  const PCI_MMCONFIG_START = DRAM_MEM_START - (256n << 20n); // DRAM_MEM_START - PCI_MMCONFIG_SIZE
  const GSI_LEGACY_NUM = 127 - 32 + 1; // SPI_END - SPI_START + 1, from GSI_LEGACY_START = 0

  it("has the six pools over the aarch64 constants", () => {
    assert.deepEqual(bounds(getLayout("firecracker-aarch64")), {
      systemMemory: span(DRAM_MEM_START, SYSTEM_MEM_SIZE),
      mmio32: [MEM_32BIT_DEVICES_START, PCI_MMCONFIG_START - 1n],
      mmio64: span(256n << 30n, 256n << 30n),
      pastMmio64: span(512n << 30n, 512n << 30n),
      legacyIrq: ids(0, GSI_LEGACY_NUM - 1),
      msi: ids(GSI_LEGACY_NUM, 4095),
      instanceId: ids(0, 0xffff_ffff),
    });
  });

  it("places virtio devices first, then the serial and RTC at their fixed pages with the next GSIs", () => {
    const virtio: ResourceRequest[] = [{ kind: "irq" }, { kind: "mmio", size: MMIO_LEN, alignment: MMIO_LEN }];
    const placed = place(getLayout("firecracker-aarch64"), [
      ["blk0", virtio],
      ["net0", virtio],
      // device_manager/mod.rs attach_legacy_devices_aarch64: serial (when console= is given), then the RTC.
      ["serial", [{ kind: "mmio", size: MMIO_LEN, fixed: SERIAL_MEM_START }, { kind: "irq" }]],
      ["rtc", [{ kind: "mmio", size: MMIO_LEN, fixed: RTC_MEM_START }, { kind: "irq" }]],
      ["vmgenid", [{ kind: "irq" }, { kind: "mmio", size: 16, alignment: 8, pool: "systemMemory", placement: "last" }]],
    ]);
    assert.deepEqual(get(placed, "blk0"), { name: "blk0", pio: [], mmio: [span(MEM_32BIT_DEVICES_START, MMIO_LEN)], irqs: [0], msi: [] });
    assert.deepEqual(get(placed, "net0").mmio, [span(MEM_32BIT_DEVICES_START + MMIO_LEN, MMIO_LEN)]);
    assert.deepEqual([get(placed, "serial").irqs, get(placed, "serial").mmio], [[2], [span(SERIAL_MEM_START, MMIO_LEN)]]);
    assert.deepEqual(get(placed, "rtc").irqs, [3]);
    assert.deepEqual(get(placed, "vmgenid").mmio, [span(DRAM_MEM_START + SYSTEM_MEM_SIZE - 16n, 16n)]);
  });

  it("describes RAM after the system memory and the GICv3 below MMIO32_MEM_START", () => {
    const p = getPreset("firecracker-aarch64");
    const board = p.board(resolveParameters("firecracker-aarch64", { ramSize: 1n * GiB }));
    // fdt.rs create_memory_node: DRAM less SYSTEM_MEM_SIZE at its start.
    assert.deepEqual(board.memory, [{ base: DRAM_MEM_START + SYSTEM_MEM_SIZE, size: 1n * GiB - SYSTEM_MEM_SIZE }]);
    // gicv3/mod.rs: the distributor (KVM_VGIC_V3_DIST_SIZE = 64 KiB) ends at MMIO32_MEM_START.
    assert.deepEqual(board.interruptController.kind === "gic-v3" && board.interruptController.distributor, { base: MMIO32_MEM_START - 64n * KiB, size: 64n * KiB });
  });
});

describe("pc-x86_64 against qemu/qemu q35 and coreboot/seabios", () => {
  const PCIEXBAR = 0xb000_0000n; // include/hw/pci-host/q35.h MCH_HOST_BRIDGE_PCIEXBAR_DEFAULT
  const PCIEXBAR_MAX = 256n * MiB; // q35.h MCH_HOST_BRIDGE_PCIEXBAR_MAX
  const HOLE64_SIZE = 1n << 35n; // hw/pci-host/q35.c Q35_PCI_HOST_HOLE64_SIZE_DEFAULT
  const PCIMEM_END = 0xfec0_0000n; // seabios src/config.h BUILD_PCIMEM_END
  /** hw/i386/pc_q35.c pc_q35_init: below 4 GiB all RAM up to 0xb0000000, else 2 GiB; pc.c pc_pci_hole64_start rounds to 1 GiB. */
  const hole64 = (ram: bigint): bigint => {
    const below = ram >= 0xb000_0000n ? 0x8000_0000n : ram;
    const start = FOUR_GIB + ram - below;
    return ((start + GiB - 1n) / GiB) * GiB;
  };

  it("moves the 64-bit window with the RAM: right after the RAM above 4 GiB, 32 GiB long", () => {
    for (const ram of [128n * MiB, 2n * GiB, 0xb000_0000n - 4096n, 0xb000_0000n, 8n * GiB, 8n * GiB + 4096n, 100n * GiB]) {
      const b = bounds(getLayout("pc-x86_64", { ramSize: ram }));
      assert.deepEqual(b.mmio64, span(hole64(ram), HOLE64_SIZE), `ramSize ${ram}`);
    }
    assert.equal(hole64(128n * MiB), FOUR_GIB); // no RAM above 4 GiB: the window starts at 4 GiB
    assert.equal(hole64(8n * GiB), 10n * GiB);
    assert.deepEqual(getLayout("pc-x86_64"), getLayout("pc-x86_64", { ramSize: 128n * MiB })); // hw/core/machine.c default_ram_size
  });

  it("reserves the named fixed regions, the ISA lines and the PIRQ lines, and leaves SeaBIOS's windows free", () => {
    const layout = resolveLayout(getLayout("pc-x86_64"));
    const at = (owner: string) => layout.reserved.filter((r) => r.owner === owner).map((r) => [r.pool, r.start, r.end]);
    assert.deepEqual(at("pci-mmconfig"), [["mmio32", PCIEXBAR, PCIEXBAR + PCIEXBAR_MAX - 1n]]);
    assert.deepEqual(at("ioapic"), [["mmio32", 0xfec0_0000n, 0xfec0_0fffn]]); // IO_APIC_DEFAULT_ADDRESS
    assert.deepEqual(at("hpet"), [["mmio32", 0xfed0_0000n, 0xfed0_03ffn]]); // HPET_BASE, HPET_LEN
    assert.deepEqual(at("ich9-rcba"), [["mmio32", 0xfed1_c000n, 0xfed1_ffffn]]); // seabios dev-q35.h ICH9_LPC_RCBA_ADDR, ICH9_CC_SIZE
    assert.deepEqual(at("lapic"), [["mmio32", 0xfee0_0000n, 0xfeef_ffffn]]); // APIC_DEFAULT_ADDRESS, APIC_SPACE_SIZE
    assert.deepEqual(at("kvm-identity-map-tss"), [["mmio32", 0xfeff_c000n, 0xfeff_ffffn]]); // kvm_arch_init identity_base, 0x4000
    assert.deepEqual(at("bios"), [["mmio32", FOUR_GIB - 256n * KiB, FOUR_GIB - 1n]]); // bios-256k.bin at the top
    assert.deepEqual(at("lpt1"), [["legacyIrq", 7n, 7n]]);
    assert.deepEqual(at("pci-intx"), [["legacyIrq", 16n, 23n]]); // ich9.h ICH9_LPC_PIC_NUM_PINS = 16, 8 PIRQs
    const b = bounds(getLayout("pc-x86_64"));
    assert.deepEqual(b.pio, [0xc000n, 0xffffn]); // pciinit.c pci_bios_init_root_regions_io: r_io->base = 0xc000
    // Nothing reserved inside [pcimem_start, pcimem_end) = [MMCONFIG end, BUILD_PCIMEM_END).
    assert.ok(layout.reserved.every((r) => r.pool !== "mmio32" || r.end < PCIEXBAR + PCIEXBAR_MAX || r.start >= PCIMEM_END));
  });

  it("places BARs from the window starts and leaves INTx to be derived", () => {
    const placed = place(getLayout("pc-x86_64", { ramSize: 8n * GiB }), [
      ["com1", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4 }]],
      ["lpt1", [{ kind: "pio", size: 8, fixed: 0x378 }, { kind: "irq", fixed: 7 }]],
      ["nic", [{ kind: "pio", size: 0x20, alignment: 0x20 }, { kind: "mmio", size: 0x1000, alignment: 0x1000 }, { kind: "mmio", size: 0x4000, alignment: 0x4000, mmio64: true }, { kind: "msi", count: 3 }]],
      // slot 3, INTA: ICH9 rotates slots 0-23 over PIRQ E-H, E + (3 + 0) mod 4 = H = GSI 23, fixed inside the pci-intx reservation.
      ["xhci", [{ kind: "mmio", size: 0x10000, alignment: 0x10000 }, { kind: "irq", fixed: 23 }]],
      ["isa-dev", [{ kind: "irq" }]],
    ]);
    assert.deepEqual(get(placed, "nic"), { name: "nic", pio: [[0xc000n, 0xc01fn]], mmio: [[PCIEXBAR + PCIEXBAR_MAX, PCIEXBAR + PCIEXBAR_MAX + 0xfffn], span(hole64(8n * GiB), 0x4000n)], irqs: [], msi: [24, 25, 26] });
    assert.deepEqual(get(placed, "xhci").irqs, [23]);
    // The first allocatable line: 5 (0-4 below the pool; 7, 8, 9, 12 and 16-23 reserved).
    assert.deepEqual(get(placed, "isa-dev").irqs, [5]);
  });
});

describe("cloud-hypervisor-x86_64 against cloud-hypervisor/cloud-hypervisor v53.0", () => {
  const MEM_32BIT_DEVICES_START = 0xc000_0000n; // arch/src/x86_64/layout.rs MEM_32BIT_RESERVED_START
  const MEM_32BIT_DEVICES_SIZE = 640n << 20n; // layout.rs MEM_32BIT_DEVICES_SIZE
  const PLATFORM_DEVICE_AREA_SIZE = 1n << 20n; // vmm/src/memory_manager.rs
  const mmioSpace = (bits: number) => (1n << BigInt(bits)) - (1n << 16n); // memory_manager.rs mmio_address_space_size
  /** memory_manager.rs start_addr: after RAM, which fills [0, 3 GiB) and continues at RAM_64BIT_START. */
  const deviceAreaStart = (ram: bigint) => (ram <= 3n * GiB ? FOUR_GIB : FOUR_GIB + ram - 3n * GiB);

  it("derives its 64-bit bounds from the RAM size and the guest's physical address width", () => {
    for (const [ram, bits] of [[512n * MiB, 46], [3n * GiB, 46], [4n * GiB, 40], [64n * GiB, 39]] as const) {
      const platform = mmioSpace(bits) - PLATFORM_DEVICE_AREA_SIZE;
      assert.deepEqual(bounds(getLayout("cloud-hypervisor-x86_64", { ramSize: ram, physAddressBits: bits })), {
        pio: [0n, 0xffffn], // SystemAllocator::new(GuestAddress(0), 1 << 16, ...)
        mmio32: span(MEM_32BIT_DEVICES_START, MEM_32BIT_DEVICES_SIZE),
        mmio64: [deviceAreaStart(ram), platform - 1n],
        pastMmio64: span(platform, PLATFORM_DEVICE_AREA_SIZE),
        legacyIrq: ids(5, 23), // X86_64_IRQ_BASE .. NUM_IOAPIC_PINS - 1
        msi: ids(24, 4095), // gsi.rs: from the last APIC pin to MAX_GUEST_IRQS - 1
        instanceId: ids(0, 0xffff_ffff),
      });
    }
    // vm_config.rs DEFAULT_MEMORY_MB = 512, DEFAULT_MAX_PHYS_BITS = 46.
    assert.deepEqual(getLayout("cloud-hypervisor-x86_64"), getLayout("cloud-hypervisor-x86_64", { ramSize: 512n * MiB, physAddressBits: 46 }));
  });

  it("places top-down, after the eight PCI INTx lines it takes first", () => {
    const platformTop = mmioSpace(46); // the platform area ends here
    const BAR = 0x80000n; // virtio-devices/src/transport/pci_device.rs CAPABILITY_BAR_SIZE: next_pow2(0x48800)
    const BAR64_ALIGN = 0x80_0000n; // pci_device.rs VIRTIO_PCI_BAR_ALIGN
    const last = { placement: "last" } as const;
    const placed = place(getLayout("cloud-hypervisor-x86_64"), [
      // device_manager.rs DeviceManager::new: DEVICE_MANAGER_ACPI_SIZE 0x10, CPU_MANAGER_ACPI_SIZE 0xc, page aligned.
      ["dm-acpi", [{ kind: "mmio", size: 0x10, alignment: 0x1000, pool: "pastMmio64", ...last }]],
      ["cpu-acpi", [{ kind: "mmio", size: 0xc, alignment: 0x1000, pool: "pastMmio64", ...last }]],
      // add_acpi_devices: the GED takes the next IRQ and GED_DEVICE_ACPI_SIZE (1) of platform MMIO.
      ["ged", [{ kind: "irq" }, { kind: "mmio", size: 1, alignment: 0x1000, pool: "pastMmio64", ...last }]],
      ["shutdown", [{ kind: "pio", size: 8, fixed: 0x600 }]],
      ["serial", [{ kind: "pio", size: 8, fixed: 0x3f8 }, { kind: "irq", fixed: 4 }]],
      // A boot virtio-blk gets a 32-bit BAR aligned to its size; others a 64-bit one aligned to 8 MiB.
      ["blk", [{ kind: "mmio", size: BAR, alignment: BAR, ...last }]],
      ["net", [{ kind: "mmio", size: BAR, alignment: BAR64_ALIGN, mmio64: true, ...last }]],
    ]);
    const platformStart = platformTop - PLATFORM_DEVICE_AREA_SIZE;
    assert.deepEqual(get(placed, "dm-acpi").mmio, [span(platformTop - 0x1000n, 0x10n)]);
    assert.deepEqual(get(placed, "cpu-acpi").mmio, [span(platformTop - 0x2000n, 0xcn)]);
    assert.deepEqual(get(placed, "ged").mmio, [span(platformTop - 0x3000n, 1n)]);
    assert.deepEqual(get(placed, "ged").irqs, [5 + 8]); // pci_segment.rs reserve_legacy_interrupts_for_pci_devices took 5..12
    assert.deepEqual(get(placed, "blk").mmio, [span(MEM_32BIT_DEVICES_START + MEM_32BIT_DEVICES_SIZE - BAR, BAR)]);
    assert.deepEqual(get(placed, "net").mmio, [span(((platformStart - BAR) / BAR64_ALIGN) * BAR64_ALIGN, BAR)]);
    assert.ok(platformStart > 0n);
  });
});

describe("crosvm-x86_64 against google/crosvm", () => {
  // x86_64/src/lib.rs
  const FIRST_ADDR_PAST_32BITS = FOUR_GIB;
  const RESERVED_MEM_SIZE = 0x800_0000n; // RESERVED_MEM_SIZE
  const DEFAULT_PCI_MEM_END = FIRST_ADDR_PAST_32BITS - RESERVED_MEM_SIZE - 1n; // DEFAULT_PCI_MEM_END
  const ECAM_SIZE = 0x400_0000n; // DEFAULT_PCIE_CFG_MMIO_SIZE
  const ECAM_START = DEFAULT_PCI_MEM_END - ECAM_SIZE + 1n; // DEFAULT_PCIE_CFG_MMIO_START
  const LOW_MMIO_START = ECAM_START < FOUR_GIB - 768n * MiB ? ECAM_START : FOUR_GIB - 768n * MiB; // min(ECAM start, 4 GiB - MEM_32BIT_GAP_SIZE)
  const HIGH_MMIO_MAX_END = (1n << 46n) - 1n; // HIGH_MMIO_MAX_END
  /** get_high_mmio_range: after the vcfg region (2 x ECAM) at max(RAM end up to 2 MiB, 4 GiB). */
  const highStart = (ram: bigint) => {
    const end = ram <= LOW_MMIO_START ? ram : FOUR_GIB + ram - LOW_MMIO_START; // arch_memory_regions
    const rounded = ((end + 2n * MiB - 1n) / (2n * MiB)) * (2n * MiB);
    return (rounded > FOUR_GIB ? rounded : FOUR_GIB) + 2n * ECAM_SIZE;
  };

  it("has its I/O window from 0xc000, low MMIO with the ECAM reserved, and high MMIO up to the address width", () => {
    for (const [ram, bits] of [[256n * MiB, 46], [4n * GiB, 39], [16n * GiB, 48]] as const) {
      const physEnd = (1n << BigInt(bits)) - 1n;
      assert.deepEqual(bounds(getLayout("crosvm-x86_64", { ramSize: ram, physAddressBits: bits })), {
        pio: [0xc000n, 0xffffn], // get_system_allocator_config: io 0xc000..=0xffff
        mmio32: [LOW_MMIO_START, DEFAULT_PCI_MEM_END],
        mmio64: [highStart(ram), physEnd < HIGH_MMIO_MAX_END ? physEnd : HIGH_MMIO_MAX_END],
        legacyIrq: ids(9, 23), // X86_64_IRQ_BASE = 9; hypervisor/src/x86_64.rs NUM_IOAPIC_PINS = 24
        msi: ids(24, 1023), // system_allocator.rs irq_allocator ends at 1023
        instanceId: ids(0, 0xffff_ffff),
      });
    }
    assert.deepEqual(resolveLayout(getLayout("crosvm-x86_64")).reserved, [{ pool: "mmio32", start: ECAM_START, end: DEFAULT_PCI_MEM_END, owner: "pcie-ecam" }]);
  });

  it("places virtio-pci BARs bottom-up in low MMIO and INTx lines from 9", () => {
    const BAR = 0x8000n; // devices/src/virtio/virtio_pci_device.rs CAPABILITY_BAR_SIZE, aligned to itself, below 4 GiB
    const pci: ResourceRequest[] = [{ kind: "mmio", size: BAR, alignment: BAR }, { kind: "irq" }];
    const placed = place(getLayout("crosvm-x86_64"), [
      ["cmos", [{ kind: "pio", size: 2, fixed: 0x70 }, { kind: "irq", fixed: 8 }]], // devices/src/cmos.rs RTC_IRQ
      ["blk", pci],
      ["net", pci],
    ]);
    assert.deepEqual(get(placed, "blk"), { name: "blk", pio: [], mmio: [span(LOW_MMIO_START, BAR)], irqs: [9], msi: [] });
    assert.deepEqual(get(placed, "net"), { name: "net", pio: [], mmio: [span(LOW_MMIO_START + BAR, BAR)], irqs: [10], msi: [] });
  });
});

describe("riscv64-virt against qemu/qemu hw/riscv/virt.c", () => {
  const VIRT_VIRTIO = 0x1000_1000n; // virt_memmap[VIRT_VIRTIO].base, size 0x1000
  const VIRTIO_IRQ = 1; // include/hw/riscv/virt.h VIRTIO_IRQ
  const VIRTIO_COUNT = 8; // virt.h VIRTIO_COUNT
  const UART0_IRQ = 10; // virt.h UART0_IRQ
  const PCIE_IRQ = 0x20; // virt.h PCIE_IRQ
  const HIGH_SIZE = 16n * GiB; // virt.c VIRT64_HIGH_PCIE_MMIO_SIZE

  it("has the PCIe windows of virt_memmap, the high one after RAM rounded up to its size", () => {
    for (const ram of [128n * MiB, 14n * GiB, 20n * GiB]) {
      const high = (((0x8000_0000n + ram) + HIGH_SIZE - 1n) / HIGH_SIZE) * HIGH_SIZE; // virt_machine_init ROUND_UP
      assert.deepEqual(bounds(getLayout("riscv64-virt", { ramSize: ram })), {
        pio: [0n, 0xffffn], // VIRT_PCIE_PIO size 0x10000, PCI I/O space
        mmio32: span(0x4000_0000n, 0x4000_0000n), // VIRT_PCIE_MMIO
        mmio64: span(high, HIGH_SIZE),
        legacyIrq: ids(1, 95), // VIRT_IRQCHIP_NUM_SOURCES = 96
        msi: ids(96, 96 + 255 - 1), // VIRT_IRQCHIP_NUM_MSIS = 255, numbered after the sources
        instanceId: ids(0, 0xffff_ffff),
      });
    }
    const reserved = resolveLayout(getLayout("riscv64-virt")).reserved.map((r) => [r.owner, r.start, r.end]);
    assert.deepEqual(reserved, [
      ["virtio-mmio", BigInt(VIRTIO_IRQ), BigInt(VIRTIO_IRQ + VIRTIO_COUNT - 1)],
      ["uart0", BigInt(UART0_IRQ), BigInt(UART0_IRQ)],
      ["rtc", 11n, 11n], // virt.h RTC_IRQ
      ["pcie-intx", BigInt(PCIE_IRQ), BigInt(PCIE_IRQ + 3)],
      ["platform-bus", 64n, 95n], // virt.h VIRT_PLATFORM_BUS_IRQ
    ]);
  });

  it("gives devices their fixed transports (the first device the highest) and PCI BARs from the window", () => {
    const transport = (n: number): ResourceRequest[] => [{ kind: "mmio", size: 0x1000, fixed: VIRT_VIRTIO + BigInt(n) * 0x1000n }, { kind: "irq", fixed: VIRTIO_IRQ + n }];
    const placed = place(getLayout("riscv64-virt"), [
      ["uart0", [{ kind: "mmio", size: 0x100, fixed: 0x1000_0000 }, { kind: "irq", fixed: UART0_IRQ }]],
      ["blk", transport(VIRTIO_COUNT - 1)],
      ["net", transport(VIRTIO_COUNT - 2)],
      // 00:01.0 INTA: PCIE_IRQ + (1 + 0) mod 4, derived.
      ["nvme", [{ kind: "mmio", size: 0x4000, alignment: 0x4000 }, { kind: "irq", fixed: PCIE_IRQ + 1 }]],
    ]);
    assert.deepEqual(get(placed, "blk").mmio, [span(VIRT_VIRTIO + 7n * 0x1000n, 0x1000n)]);
    assert.deepEqual(get(placed, "blk").irqs, [8]);
    assert.deepEqual(get(placed, "net").irqs, [7]);
    assert.deepEqual(get(placed, "nvme"), { name: "nvme", pio: [], mmio: [span(0x4000_0000n, 0x4000n)], irqs: [PCIE_IRQ + 1], msi: [] });
  });
});
