/**
 * The command line: which subcommand, its options, and the help text of each. Parsing is kept
 * apart from running so that a usage error is found before any file is read.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { InputError } from "./diagnostics.js";

/** Output formats of `plan` and `show`. */
export const FORMATS = ["text", "iomem", "json", "svg", "cmdline", "dts"] as const;
/** One of {@link FORMATS}. */
export type Format = (typeof FORMATS)[number];

/** Options shared by the commands that print a plan. */
export interface OutputOptions {
  readonly format: Format;
  /** False when `--no-color` was given; otherwise colour depends on the terminal and `NO_COLOR`. */
  readonly colorAllowed: boolean;
}

/** A parsed command line. */
export type Command =
  | { readonly kind: "help"; readonly topic: HelpTopic }
  | { readonly kind: "version" }
  | ({ readonly kind: "plan"; readonly file: string | undefined; readonly save: string | undefined } & OutputOptions)
  | ({ readonly kind: "show"; readonly file: string } & OutputOptions)
  | { readonly kind: "check"; readonly files: readonly string[]; readonly colorAllowed: boolean };

/** What `--help` can be asked about. */
export type HelpTopic = "main" | "plan" | "check" | "show";

const USAGE = "usage: vm-allocator <command> [options]";

/** The help text of each topic, as printed by `--help`. */
export const HELP: Readonly<Record<HelpTopic, string>> = {
  main: `${USAGE}

Plan the guest resources of a virtual machine: port I/O, 32- and 64-bit MMIO, legacy IRQs, MSI
GSIs and device instance ids, allocated by vm-allocator's DefaultSystemAllocator and DeviceManager.

Commands:
  plan [FILE]   allocate a layout (built-in Firecracker-like microVM when no FILE) and print it
  check FILE... validate layouts or saved plans and list every problem found
  show FILE     print a plan saved with \`plan --save\` or written by \`plan --format json\`

Options:
  -h, --help     show help (also \`vm-allocator <command> --help\`)
  -V, --version  print the version

Exit status: 0 on success, 2 for bad input or usage, 1 for an internal error.
Results go to stdout, diagnostics to stderr. Colour is used only on a terminal, and never
with NO_COLOR set or --no-color.
`,
  plan: `usage: vm-allocator plan [FILE|-] [--format text|iomem|json|svg|cmdline|dts] [--save PLAN]

Reads a layout (JSON; "-" reads stdin), allocates every reserved range and every device request
through DefaultSystemAllocator and DeviceManager, and prints the result. Without FILE it plans
the built-in default: a Firecracker v1.16 x86_64 microVM (COM1, the i8042, eight virtio-mmio
devices in Firecracker's attach order, vmgenid and vmclock).

Layout file:
  {
    "preset": "firecracker-x86_64" | "pc-x86_64" | "cloud-hypervisor-x86_64" | "crosvm-x86_64"
              | "firecracker-aarch64" | "riscv64-virt",   (default firecracker-x86_64)
    "parameters": { "ramSize": "0x200000000", "physAddressBits": 46 },   (presets that take them)
    "layout": { ...overrides of the preset's pools... },
    "reserved": [ { "pool": "mmio32", "start": "0xfec00000", "size": "0x1000", "owner": "ioapic" },
                  { "pool": "legacyIrq", "id": 4, "owner": "com1" } ],
    "devices": [ { "name": "virtio-blk0",
                   "requests": [ { "kind": "mmio", "size": "0x1000" }, { "kind": "irq" } ] } ]
  }
  Request kinds: pio/mmio {size, alignment?, fixed?, window?: {min, max}, placement?: "first"|"last",
    mmio only: mmio64?, allowFallback?, pool?: "mmio32"|"mmio64"|"pastMmio64"|"systemMemory"},
  irq {fixed?}, msi {count, fixed?: [...]}, instanceId {fixed?}.
  PCI functions (presets with a PCI host: pc-x86_64, riscv64-virt, firecracker-aarch64):
    { "name": "nvme0", "kind": "pci", "slot"?: 0-31, "function"?: 0-7, "vendorId"?, "deviceId"?,
      "classCode"?, "interruptPin"?: "A"-"D", "bars"?: [ { "kind": "io"|"mem32"|"mem64",
      "size", "prefetchable"?, "index"? } ], "msix"?: { "vectors", "bar", "tableOffset"?, "pbaOffset"? } }
    Fixed slots are held first, the others take the lowest free slot from 1; BARs are placed
    naturally aligned in the pool of their kind; INTx follows the preset's wiring.
  Numbers are JSON numbers (non-negative safe integers) or strings: "0x1000", "4096", "0xffff_ffff".
  Unknown fields are errors.

Options:
  -f, --format FMT  text (default: a table per pool, then IRQs/GSIs), iomem (/proc/iomem and
                    /proc/ioports style), json (machine-readable, u64 as hex strings;
                    it carries the saved plan, so \`show\` and \`check\` read it),
                    svg (a map of each address space), cmdline (the kernel command line
                    for the virtio-mmio devices: virtio_mmio.device=4K@0xc0001000:5 ...),
                    dts (a devicetree source for dtc; aarch64 and riscv64 presets only)
  -s, --save PLAN   also write the whole allocator state to PLAN (for \`show\` and \`check\`);
                    written only when planning succeeds
      --no-color    never colour the output
  -h, --help        show this help
`,
  check: `usage: vm-allocator check FILE...

Validates each FILE (a layout, a plan saved with \`plan --save\` or a report written by
\`plan --format json\`) and lists every problem found, one per line on stderr, as
FILE: FIELD-PATH: reason. A layout is also planned, so overlapping fixed ranges and requests no
pool can satisfy are reported too. A report must say what the plan it carries says.

Exit status: 0 when every file is valid (one "ok" line per file on stdout), 2 otherwise.

Options:
      --no-color  never colour the output
  -h, --help      show this help
`,
  show: `usage: vm-allocator show PLAN [--format text|iomem|json|svg|cmdline|dts]

Prints a plan saved with \`vm-allocator plan --save PLAN\`, or the report that
\`vm-allocator plan --format json\` writes (it carries that plan), in any output format.

Options:
  -f, --format FMT  text (default), iomem, json, svg, cmdline or dts (see \`vm-allocator plan --help\`)
      --no-color    never colour the output
  -h, --help        show this help
`,
};

const OUTPUT_OPTIONS = {
  format: { type: "string", short: "f" },
  "no-color": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

/**
 * Parses `argv` (without the node and script paths).
 * @throws InputError for a usage error, naming the offending argument.
 */
export function parseCommandLine(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined) throw usage("no command given; try `vm-allocator --help`");
  if (first === "-h" || first === "--help" || first === "help") {
    if (first === "help" && rest[0] !== undefined) return { kind: "help", topic: topic(rest[0]) };
    return { kind: "help", topic: "main" };
  }
  if (first === "-V" || first === "--version") return { kind: "version" };
  switch (first) {
    case "plan": {
      const { values, positionals } = parse("plan", rest, { ...OUTPUT_OPTIONS, save: { type: "string", short: "s" } });
      if (values["help"] === true) return { kind: "help", topic: "plan" };
      if (positionals.length > 1) throw usage(`plan takes at most one layout file, got ${positionals.length}`, "plan");
      const save = values["save"];
      if (save === "") throw usage("--save needs a file name", "plan");
      return { kind: "plan", file: positionals[0], save: typeof save === "string" ? save : undefined, ...output("plan", values) };
    }
    case "show": {
      const { values, positionals } = parse("show", rest, OUTPUT_OPTIONS);
      if (values["help"] === true) return { kind: "help", topic: "show" };
      const file = positionals[0];
      if (file === undefined) throw usage("show needs the plan file to print", "show");
      if (positionals.length > 1) throw usage(`show takes one plan file, got ${positionals.length}`, "show");
      return { kind: "show", file, ...output("show", values) };
    }
    case "check": {
      const { values, positionals } = parse("check", rest, { "no-color": { type: "boolean" }, help: { type: "boolean", short: "h" } });
      if (values["help"] === true) return { kind: "help", topic: "check" };
      if (positionals.length === 0) throw usage("check needs at least one file", "check");
      return { kind: "check", files: positionals, colorAllowed: values["no-color"] !== true };
    }
    default:
      if (first.startsWith("-")) throw usage(`unknown option ${first}; try \`vm-allocator --help\``);
      throw usage(`unknown command ${JSON.stringify(first)}; the commands are plan, check and show`);
  }
}

function topic(name: string): HelpTopic {
  if (name === "plan" || name === "check" || name === "show") return name;
  throw usage(`no help on ${JSON.stringify(name)}; the commands are plan, check and show`);
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

function parse(command: HelpTopic, args: readonly string[], options: ParseArgsConfig["options"]): { values: Values; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (error) {
    // node:util's messages are long and mention internals; say the same thing briefly.
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    const option = /--[\w-]+/.exec(message)?.[0] ?? /(?<![\w-])-\w/.exec(message)?.[0];
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw usage(`unknown option ${option ?? message}`, command);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      throw usage(option === undefined ? message : `option ${option} needs a value`, command);
    }
    throw usage(message, command);
  }
}

function output(command: HelpTopic, values: Values): OutputOptions {
  const format = values["format"] ?? "text";
  if (typeof format !== "string" || !(FORMATS as readonly string[]).includes(format)) {
    throw usage(`--format must be one of ${FORMATS.join(", ")}, got ${JSON.stringify(format)}`, command);
  }
  return { format: format as Format, colorAllowed: values["no-color"] !== true };
}

function usage(message: string, command?: HelpTopic): InputError {
  const hint = command === undefined ? "" : ` (see \`vm-allocator ${command} --help\`)`;
  return InputError.of(`${message}${hint}`);
}
