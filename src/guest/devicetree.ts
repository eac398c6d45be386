/**
 * A devicetree source (DTS, `dtc -I dts` input) for a planned VM on aarch64 or riscv64: the
 * board's fixed parts (RAM, CPUs, interrupt controller, clocks, a PCI host bridge) from its
 * preset, and a node for each planned device from the ranges and interrupts it was given.
 *
 * The trees follow the ones their VMMs write: Firecracker's `src/vmm/src/arch/aarch64/fdt.rs`
 * (`create_fdt` and its helpers) and QEMU's `hw/riscv/virt.c` (`create_fdt_*`), with two
 * departures so that `dtc` compiles them without a warning: every node with a `reg` carries the
 * matching unit address (Firecracker writes `memory@ram`, `vmgenid` and `intc`), the Firecracker
 * PCI node's `ranges` give the real 64-bit window size and it has no cell-less `msi-parent`, and
 * the RISC-V CPU interrupt controllers say `#address-cells = <0>`.
 *
 * x86 guests learn of their devices from ACPI tables and the kernel command line; asking for
 * their device tree is refused with a message saying so.
 */
import { AllocatorError } from "../core/errors.js";
import { getPreset, resolveLayout, resolveParameters, type ResolvedLayout } from "../system/layouts.js";
import type { Board, PhysicalRange } from "../system/presets/preset.js";
import type { GuestDevice, GuestMachine } from "./guest-device.js";

/** Options of {@link devicetreeSource}. */
export interface DevicetreeOptions {
  /** Number of vCPUs (placeholder nodes, `reg` = the CPU index); defaults to 1. */
  readonly cpus?: number;
  /** Describe the PCI host bridge; defaults to whether the machine has one unless told otherwise. */
  readonly pci?: boolean;
  /** A kernel command line for `/chosen/bootargs`. */
  readonly bootargs?: string;
}

type Cell = number | bigint | `&${string}`;
type Value = { readonly cells: readonly (readonly Cell[])[] } | { readonly strings: readonly string[] } | null;

/** A node of the tree being written; properties and children in the order added. */
class Node {
  readonly props: [string, Value][] = [];
  readonly children: Node[] = [];
  constructor(
    readonly name: string,
    readonly label?: string,
  ) {}

  prop(name: string, value: Value): this {
    this.props.push([name, value]);
    return this;
  }
  cells(name: string, ...groups: (readonly Cell[])[]): this {
    return this.prop(name, { cells: groups });
  }
  str(name: string, ...strings: string[]): this {
    return this.prop(name, { strings });
  }
  flag(name: string): this {
    return this.prop(name, null);
  }
  child(name: string, label?: string): Node {
    const n = new Node(name, label);
    this.children.push(n);
    return n;
  }
}

const hex = (v: bigint): string => v.toString(16);
/** A u64 as two cells, high word first. */
const u64 = (v: bigint): [number, number] => [Number(v >> 32n), Number(v & 0xffff_ffffn)];
const reg = (r: PhysicalRange): Cell[] => [...u64(r.base), ...u64(r.size)];

function cellText(c: Cell): string {
  return typeof c === "string" ? c : `0x${c.toString(16)}`;
}

function quote(s: string): string {
  return `"${s.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
}

function render(node: Node, depth: number, out: string[]): void {
  const pad = "\t".repeat(depth);
  out.push(`${pad}${node.label === undefined ? "" : `${node.label}: `}${node.name} {`);
  for (const [name, value] of node.props) {
    if (value === null) out.push(`${pad}\t${name};`);
    else if ("strings" in value) out.push(`${pad}\t${name} = ${value.strings.map(quote).join(", ")};`);
    else out.push(`${pad}\t${name} = ${value.cells.map((g) => `<${g.map(cellText).join(" ")}>`).join(", ")};`);
  }
  for (const child of node.children) {
    out.push("");
    render(child, depth + 1, out);
  }
  out.push(`${pad}};`);
}

/** The planned device's register block (a virtio-mmio device may own more memory after it), or an error naming it. */
function onlyRange(d: GuestDevice): PhysicalRange {
  const r = d.mmio[0];
  if (r === undefined || (d.mmio.length !== 1 && d.kind !== "virtio-mmio")) {
    throw new AllocatorError("InvalidArgument", `${d.name} (${d.kind}) holds ${d.mmio.length} MMIO ranges; its device-tree node needs exactly one`);
  }
  return { base: r.start, size: r.end - r.start + 1n };
}

function onlyIrq(d: GuestDevice): number {
  const irq = d.irqs[0];
  if (irq === undefined || d.irqs.length !== 1) {
    throw new AllocatorError("InvalidArgument", `${d.name} (${d.kind}) holds ${d.irqs.length} interrupts; its device-tree node needs exactly one`);
  }
  return irq;
}

/** The root node's common part: cells, compatible, memory, chosen. */
function root(board: Board, options: DevicetreeOptions): Node {
  const r = new Node("/");
  r.str("compatible", board.compatible).cells("#address-cells", [2]).cells("#size-cells", [2]);
  if (options.bootargs !== undefined) r.child("chosen").str("bootargs", options.bootargs);
  for (const m of board.memory) r.child(`memory@${hex(m.base)}`).str("device_type", "memory").cells("reg", reg(m));
  return r;
}

/** The PCI host bridge node for `board`, its windows from the planned pools. */
function pciNode(parent: Node, board: Board, pools: ResolvedLayout["pools"], interrupts: (pin: number, slot: number) => Cell[] | undefined, msiParent?: string): void {
  const pci = board.pci!;
  const n = parent.child(`pci@${hex(pci.ecam.base)}`);
  n.str("compatible", "pci-host-ecam-generic").str("device_type", "pci");
  n.cells("#address-cells", [3]).cells("#size-cells", [2]).cells("#interrupt-cells", [1]);
  n.cells("reg", reg(pci.ecam)).cells("bus-range", [0, pci.lastBus]).cells("linux,pci-domain", [0]).flag("dma-coherent");
  // Each entry: PCI address (space code, high, low), CPU address (2 cells), size (2 cells).
  const ranges: Cell[][] = [];
  const io = pools.pio;
  if (io !== undefined && pci.ioCpuBase !== undefined) ranges.push([0x0100_0000, ...u64(io.start), ...u64(pci.ioCpuBase + io.start), ...u64(io.end - io.start + 1n)]);
  const m32 = pools.mmio32!;
  ranges.push([0x0200_0000, ...u64(m32.start), ...u64(m32.start), ...u64(m32.end - m32.start + 1n)]);
  const m64 = pools.mmio64;
  if (m64 !== undefined) ranges.push([0x0300_0000, ...u64(m64.start), ...u64(m64.start), ...u64(m64.end - m64.start + 1n)]);
  n.cells("ranges", ...ranges);
  if (pci.intxBase !== undefined) {
    // The standard swizzle over the first four slots, as QEMU's `create_pcie_irq_map` writes it:
    // slot s, pin p (1..4) -> line base + (s + p - 1) mod 4.
    n.cells("interrupt-map-mask", [0x1800, 0, 0, 7]);
    const map: Cell[][] = [];
    for (let slot = 0; slot < 4; slot++) {
      for (let pin = 1; pin <= 4; pin++) map.push([slot << 11, 0, 0, pin, ...interrupts(pin, slot)!]);
    }
    n.cells("interrupt-map", ...map);
  }
  // Requester ids 0..255 of segment 0 map to the ITS's device ids 0..255 (fdt.rs `msi_map`).
  // Firecracker also writes `msi-parent` without a cell, which dtc warns about; `msi-map` is
  // what PCI MSI-X uses.
  if (msiParent !== undefined) n.cells("msi-map", [0, `&${msiParent}`, 0, 0x100]);
}

/** How one kind of device is written: node name, `compatible`, and what else it carries. */
interface NodeStyle {
  readonly name: string;
  readonly compatible: readonly string[];
  /** Properties before `compatible` (Firecracker writes `dma-coherent` first). */
  readonly first?: (n: Node) => unknown;
  /** Properties after `reg`, before `interrupts`. */
  readonly extra?: (n: Node) => unknown;
  /** False for a node without an `interrupts` property. */
  readonly interrupts?: boolean;
}

/** vmgenid and vmclock as Firecracker's `create_vmgenid_node` and `create_vmclock_node` write them. */
const ACPI_STYLES: Readonly<Record<"vmgenid" | "vmclock", NodeStyle>> = {
  vmgenid: { name: "vmgenid", compatible: ["microsoft,vmgenid"] },
  vmclock: { name: "ptp", compatible: ["amazon,vmclock"] },
};

/** A node per planned device under `parent`, named `name@base`; `other` devices get none. */
function deviceNodes(parent: Node, devices: readonly GuestDevice[], interrupt: (irq: number) => Cell[], styles: Partial<Record<GuestDevice["kind"], NodeStyle>>): void {
  for (const d of devices) {
    const style = d.kind === "other" ? undefined : (styles[d.kind] ?? (d.kind === "vmgenid" || d.kind === "vmclock" ? ACPI_STYLES[d.kind] : undefined));
    if (style === undefined) continue;
    const range = onlyRange(d);
    const n = parent.child(`${style.name}@${hex(range.base)}`);
    style.first?.(n);
    n.str("compatible", ...style.compatible).cells("reg", reg(range));
    style.extra?.(n);
    if (style.interrupts !== false) n.cells("interrupts", interrupt(onlyIrq(d)));
  }
}

function aarch64Tree(board: Board, pools: ResolvedLayout["pools"], devices: readonly GuestDevice[], options: DevicetreeOptions, cpus: number, pci: boolean): Node {
  const gic = board.interruptController;
  if (gic.kind !== "gic-v3") throw new AllocatorError("InvalidArgument", `an aarch64 board with a ${gic.kind} interrupt controller has no device-tree writer`);
  // fdt.rs constants: GIC_FDT_IRQ_TYPE_SPI 0, GIC_FDT_IRQ_TYPE_PPI 1, IRQ_TYPE_EDGE_RISING 1, IRQ_TYPE_LEVEL_HI 4.
  const spi = (irq: number): Cell[] => [0, irq, 1];
  const r = root(board, options);
  r.cells("interrupt-parent", ["&gic"]);
  const cpuNode = r.child("cpus").cells("#address-cells", [2]).cells("#size-cells", [0]);
  for (let i = 0; i < cpus; i++) {
    cpuNode.child(`cpu@${hex(BigInt(i))}`).str("device_type", "cpu").str("compatible", "arm,arm-v8").str("enable-method", "psci").cells("reg", [0, i]);
  }
  const redist = gic.redistributorPerCpu * BigInt(cpus);
  const redistBase = gic.distributor.base - redist;
  const g = r.child(`interrupt-controller@${hex(gic.distributor.base)}`, "gic");
  g.str("compatible", "arm,gic-v3").flag("interrupt-controller").cells("#interrupt-cells", [3]);
  g.cells("reg", reg(gic.distributor), reg({ base: redistBase, size: redist }));
  g.cells("#address-cells", [2]).cells("#size-cells", [2]).flag("ranges");
  g.cells("interrupts", [1, gic.maintenancePpi, 4]);
  if (pci && board.pci?.msiThroughIts === true) {
    const its = { base: redistBase - gic.itsSize, size: gic.itsSize };
    g.child(`msi-controller@${hex(its.base)}`, "its").str("compatible", "arm,gic-v3-its").flag("msi-controller").cells("#msi-cells", [1]).cells("reg", reg(its));
  }
  // fdt.rs `create_timer_node`: PPIs 13, 14, 11, 10, level high.
  r.child("timer").str("compatible", "arm,armv8-timer").flag("always-on").cells("interrupts", ...[13, 14, 11, 10].map((p) => [1, p, 4]));
  if (board.uartClock.kind === "clock-node") {
    r.child("apb-pclk", "apb_pclk").str("compatible", "fixed-clock").cells("#clock-cells", [0]).cells("clock-frequency", [board.uartClock.hz]).str("clock-output-names", "clk24mhz");
  }
  r.child("psci").str("compatible", "arm,psci-0.2").str("method", "hvc");
  // fdt.rs `create_rtc_node` gives the PL031 no interrupts (the model raises none); the
  // serial and the RTC take the apb-pclk; virtio transports are dma-coherent.
  const clock = (n: Node) => n.cells("clocks", ["&apb_pclk"]).str("clock-names", "apb_pclk");
  deviceNodes(r, devices, spi, {
    rtc: { name: "rtc", compatible: ["arm,pl031", "arm,primecell"], extra: clock, interrupts: false },
    serial: { name: "uart", compatible: ["ns16550a"], extra: clock },
    "virtio-mmio": { name: "virtio_mmio", compatible: ["virtio,mmio"], first: (n) => n.flag("dma-coherent") },
  });
  if (pci) pciNode(r, board, pools, () => undefined, board.pci?.msiThroughIts === true ? "its" : undefined);
  return r;
}

function riscv64Tree(board: Board, pools: ResolvedLayout["pools"], devices: readonly GuestDevice[], options: DevicetreeOptions, cpus: number, pci: boolean): Node {
  const plic = board.interruptController;
  if (plic.kind !== "plic") throw new AllocatorError("InvalidArgument", `a riscv64 board with a ${plic.kind} interrupt controller has no device-tree writer`);
  const r = root(board, options);
  r.str("model", "riscv-virtio,qemu");
  const cpuNode = r.child("cpus").cells("#address-cells", [1]).cells("#size-cells", [0]).cells("timebase-frequency", [board.timebaseHz ?? 10_000_000]);
  const contexts: Cell[][] = [];
  for (let i = 0; i < cpus; i++) {
    const c = cpuNode.child(`cpu@${hex(BigInt(i))}`, `cpu${i}`);
    c.str("device_type", "cpu").cells("reg", [i]).str("status", "okay").str("compatible", "riscv").str("riscv,isa", "rv64imafdc").str("mmu-type", "riscv,sv48");
    // `#address-cells` = 0 is not in QEMU's tree; dtc asks every interrupt provider for it.
    c.child("interrupt-controller", `cpu${i}_intc`).cells("#address-cells", [0]).cells("#interrupt-cells", [1]).flag("interrupt-controller").str("compatible", "riscv,cpu-intc");
    // virt.c `create_fdt_socket_plic` with the "MS" hart config: machine (11) and supervisor (9) external interrupts.
    contexts.push([`&cpu${i}_intc`, 11], [`&cpu${i}_intc`, 9]);
  }
  const soc = r.child("soc").cells("#address-cells", [2]).cells("#size-cells", [2]).str("compatible", "simple-bus").flag("ranges");
  const p = soc.child(`interrupt-controller@${hex(plic.range.base)}`, "plic");
  p.str("compatible", "sifive,plic-1.0.0", "riscv,plic0").cells("#address-cells", [0]).cells("#interrupt-cells", [1]).flag("interrupt-controller");
  p.cells("reg", reg(plic.range)).cells("interrupts-extended", ...contexts).cells("riscv,ndev", [plic.sources]);
  const plicIrq = (irq: number): Cell[] => [irq];
  const parent = (n: Node) => n.cells("interrupt-parent", ["&plic"]);
  deviceNodes(soc, devices, plicIrq, {
    serial: { name: "serial", compatible: ["ns16550a"], extra: (n) => parent(n.cells("clock-frequency", [board.uartClock.hz])) },
    rtc: { name: "rtc", compatible: ["google,goldfish-rtc"], extra: parent },
    "virtio-mmio": { name: "virtio_mmio", compatible: ["virtio,mmio"], extra: parent },
    vmgenid: { name: "vmgenid", compatible: ["microsoft,vmgenid"], extra: parent },
    vmclock: { name: "ptp", compatible: ["amazon,vmclock"], extra: parent },
  });
  const intx = board.pci?.intxBase;
  if (pci) pciNode(soc, board, pools, (pin, slot) => (intx === undefined ? undefined : ["&plic", intx + ((slot + pin - 1) % 4)]));
  return r;
}

/**
 * The devicetree source of a planned VM, for `dtc -I dts -O dtb`.
 *
 * ```ts
 * const dts = devicetreeSource({ preset: "riscv64-virt" }, [
 *   { name: "virtio-blk0", kind: "virtio-mmio", mmio: [{ start: 0x1000_8000n, end: 0x1000_8fffn }], irqs: [8] },
 * ]);
 * ```
 * @throws AllocatorError `InvalidArgument` for an x86 preset (x86 guests read ACPI tables and
 *   the kernel command line; use {@link virtioMmioCmdline}), for a device whose node needs one
 *   range and one interrupt and holds another number, for a `cpus` outside 1..512, and the
 *   errors of the preset's parameters; `NotFound` for an unknown preset.
 */
export function devicetreeSource(machine: GuestMachine, devices: readonly GuestDevice[], options: DevicetreeOptions = {}): string {
  const preset = getPreset(machine.preset);
  if (preset.arch === "x86_64") {
    throw new AllocatorError(
      "InvalidArgument",
      `${preset.name} is an x86_64 machine: its guests find their devices through ACPI tables and the kernel command line, not a device tree; use the kernel command line (virtio_mmio.device=...) instead`,
    );
  }
  const cpus = options.cpus ?? 1;
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 512) throw new AllocatorError("InvalidArgument", `options.cpus must be an integer from 1 to 512, got ${String(cpus)}`);
  const parameters = resolveParameters(preset.name, machine.parameters ?? {});
  const board = preset.board(parameters);
  const pools = resolveLayout(machine.layout ?? preset.layout(parameters)).pools;
  const pci = board.pci !== undefined && (options.pci ?? board.pci.presentByDefault);
  const tree = preset.arch === "aarch64" ? aarch64Tree(board, pools, devices, options, cpus, pci) : riscv64Tree(board, pools, devices, options, cpus, pci);
  const out = ["/dts-v1/;", ""];
  render(tree, 0, out);
  return `${out.join("\n")}\n`;
}
