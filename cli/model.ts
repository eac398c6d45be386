/**
 * The neutral description of a plan that every renderer draws from. It is built from a plan
 * snapshot (see `snapshot.ts`), never from live allocator objects, so `plan` and `show` print the
 * same thing by construction and a renderer cannot depend on allocator internals.
 */

/** Why a range or id is held. */
export type Origin =
  /** Allocated by the system allocator for a device request. */
  | "allocated"
  /** A device request with a `fixed` value (firmware- or user-assigned). */
  | "fixed"
  /** Reserved by the layout's `reserved` list (firmware, platform devices, holes). */
  | "reserved";

/** A held range of an address space. */
export interface Region {
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  readonly owner: string;
  readonly origin: Origin;
}

/**
 * One tile of an address space: a held range or a free gap. Tiles cover the pool in order.
 *
 * A device whose fixed range lies inside a reservation (a serial port at 0x3f8 inside the ISA
 * port block) is not a tile of its own: the allocator only knows the reservation, so the device
 * is listed as one of the reservation's `children`, the way /proc/ioports nests it.
 */
export interface Segment {
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  /** Who holds it; undefined for free space. */
  readonly owner: string | undefined;
  /** Undefined for free space. */
  readonly origin: Origin | undefined;
  /** Fixed device ranges inside this held range, in address order. */
  readonly children: readonly Region[];
}

/** A pool of addresses (`pio`, `mmio32`, `mmio64`). */
export interface AddressSpaceView {
  /** The pool's name in the system allocator. */
  readonly name: string;
  /** A few words for people (`Port I/O`). */
  readonly title: string;
  /** Linux resource type: ports or memory. */
  readonly kind: "io" | "mem";
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  readonly segments: readonly Segment[];
}

/** One id handed out from an id pool (or fixed outside it). */
export interface IdAssignment {
  readonly id: number;
  readonly owner: string;
  readonly origin: Origin;
  /** True for a fixed id the pool does not cover (an ISA IRQ below a microVM's IRQ pool). */
  readonly outsidePool: boolean;
  /**
   * For a fixed legacy line the pool holds under another owner (a platform reservation, or the
   * first device that fixed it): that owner. Such an entry is a second user of the line, not a
   * second id, so it is not counted as held.
   */
  readonly sharedWith: string | undefined;
}

/** A pool of ids (`legacyIrq`, `msi`, `instanceId`). */
export interface IdSpaceView {
  readonly name: string;
  readonly title: string;
  readonly first: number;
  /** Inclusive. */
  readonly last: number;
  /** Sorted by id. */
  readonly assignments: readonly IdAssignment[];
}

/** A range a device is mapped at. */
export interface DeviceRange {
  readonly start: bigint;
  readonly end: bigint;
  readonly fixed: boolean;
}

/** A registered device and what it holds. */
export interface DeviceView {
  readonly instanceId: number;
  readonly name: string;
  /** `name@instanceId`: the owner of its ranges and interrupts. */
  readonly owner: string;
  readonly pio: readonly DeviceRange[];
  readonly mmio: readonly DeviceRange[];
  readonly irqs: readonly { readonly irq: number; readonly fixed: boolean }[];
  readonly msi: readonly { readonly gsi: number; readonly fixed: boolean }[];
}

/** Everything a renderer needs. */
export interface PlanView {
  /** Where the plan came from (`built-in default`, a file name), for headings. */
  readonly source: string;
  /** The layout's own description, if it has one. */
  readonly description: string | undefined;
  /** The preset the system allocator was built from, when known. */
  readonly preset: string | undefined;
  /** The preset's parameters the layout gave, as `ramSize 0x20000000`; undefined when none. */
  readonly parameters: string | undefined;
  /**
   * What the layout changed of the preset (pool names, `reserved`); empty when the pools and
   * reservations are the preset's own. A layout with changes is derived from the preset, not it.
   */
  readonly presetChanges: readonly string[];
  readonly addressSpaces: readonly AddressSpaceView[];
  /**
   * Fixed device ranges that no pool covers (a device at a fixed address the allocator does not
   * manage), in address order, ports first.
   */
  readonly unpooled: readonly (Region & { readonly kind: "io" | "mem" })[];
  readonly idSpaces: readonly IdSpaceView[];
  /** Sorted by instance id. */
  readonly devices: readonly DeviceView[];
  /** The PCI functions, when the plan has any. */
  readonly pci: PciView | undefined;
}

/** One BAR of a PCI function. */
export interface PciBarView {
  /** Register number, 0-5. */
  readonly index: number;
  readonly kind: "io" | "mem32" | "mem64";
  readonly prefetchable: boolean;
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
  /** The plan device holding the range (the owner shown in the pools). */
  readonly owner: string;
  /** Linux's flags after the range, as `lspci -v` and dmesg print them: `64bit pref`, `pref`, or empty. */
  readonly flags: string;
  /** `[mem 0xc0000000-0xc0003fff 64bit pref]`, the way the kernel logs a BAR. */
  readonly text: string;
}

/** One PCI function. */
export interface PciFunctionView {
  /** `0000:00:03.0`. */
  readonly address: string;
  /** `00:03.0`, as `lspci` prints it. */
  readonly slot: string;
  readonly name: string;
  /** The plan device that is the function (holds its INTx share). */
  readonly owner: string;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  /** 0 for none, 1-4 for INTA-INTD. */
  readonly interruptPin: number;
  readonly gsi: number | undefined;
  /** MSI-X table entries; 0 without MSI-X. */
  readonly msixVectors: number;
  /** `INTA -> GSI 23, MSI-X 2048`, or `-`. */
  readonly interrupt: string;
  readonly bars: readonly PciBarView[];
}

/** The PCI host bridge and its functions. */
export interface PciView {
  /** `0000:00`. */
  readonly bus: string;
  /** The INTx rule (`q35`), undefined when the host routes none. */
  readonly routing: string | undefined;
  readonly ecam: Region;
  /** Undefined on a host without the 0xcf8 ports. */
  readonly configPorts: Region | undefined;
  /** In address order. */
  readonly functions: readonly PciFunctionView[];
  /** BARs by the owner of their range, for renderers labelling the pools. */
  readonly barsByOwner: ReadonlyMap<string, { readonly function: PciFunctionView; readonly bar: PciBarView }>;
}
