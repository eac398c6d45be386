/**
 * Runs one command line to completion and returns what to print, instead of printing as it
 * goes: bad input must leave stdout empty, and `--save` must write its file only when the whole
 * command succeeds, so nothing is written until everything has worked.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { parseCommandLine, HELP, type Format } from "./args.js";
import { ANSI, PLAIN, useColor, type Style } from "./color.js";
import { DEFAULT_LAYOUT, DEFAULT_SOURCE } from "./default-layout.js";
import { formatProblem, InputError, Problems, sortProblems, type Problem } from "./diagnostics.js";
import { JsonSyntaxError, parseJson, type JsonValue } from "./json-source.js";
import { readLayout } from "./layout-file.js";
import { planLayout } from "./plan.js";
import { renderCmdline, renderDts } from "./render/guest.js";
import { renderIomem } from "./render/iomem.js";
import { renderJson, REPORT_FORMAT } from "./render/json.js";
import { renderSvg } from "./render/svg.js";
import { renderText } from "./render/text.js";
import { isPlanReport, readPlanReport } from "./report.js";
import { isPlanSnapshot, PLAN_FORMAT, readPlanSnapshot, type LoadedPlan, type PlanSnapshot } from "./snapshot.js";
import { planView } from "./view.js";

/** What the command sees of its surroundings. */
export interface Environment {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: { readonly isTTY?: boolean };
  readonly stderr: { readonly isTTY?: boolean };
  /** Reads standard input (for the file name `-`). */
  readonly readStdin: () => Buffer;
}

/** What to print and the exit status. */
export interface Outcome {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Input files larger than this are refused rather than read into memory. */
const MAX_INPUT = 64 * 1024 * 1024;

/** Runs `argv` (without the node and script paths). Throws only on an internal error. */
export function run(argv: readonly string[], environment: Environment): Outcome {
  let errorStyle: Style = useColor(environment.stderr, environment.env, !argv.includes("--no-color")) ? ANSI : PLAIN;
  try {
    const command = parseCommandLine(argv);
    if (command.kind !== "help" && command.kind !== "version") {
      errorStyle = useColor(environment.stderr, environment.env, command.colorAllowed) ? ANSI : PLAIN;
    }
    switch (command.kind) {
      case "help":
        return { status: 0, stdout: HELP[command.topic], stderr: "" };
      case "version":
        return { status: 0, stdout: `${version()}\n`, stderr: "" };
      case "plan": {
        const source = command.file === undefined ? DEFAULT_SOURCE : command.file === "-" ? "stdin" : command.file;
        const value = command.file === undefined ? DEFAULT_LAYOUT : readJsonFile(command.file, environment);
        if (isPlanSnapshot(value) || isPlanReport(value)) {
          const what = isPlanReport(value) ? "a plan report" : "a saved plan";
          throw InputError.of(`is ${what}, not a layout; print it with \`vm-allocator show ${command.file ?? ""}\``, source);
        }
        const snapshot = plan(value, source);
        const loaded = selfCheck(snapshot);
        const text = render(loaded, command.format, useColor(environment.stdout, environment.env, command.colorAllowed) ? ANSI : PLAIN);
        if (command.save !== undefined) writeAtomically(command.save, `${JSON.stringify(snapshot, null, 2)}\n`);
        return { status: 0, stdout: text, stderr: "" };
      }
      case "show": {
        const source = command.file === "-" ? "stdin" : command.file;
        const value = readJsonFile(command.file, environment);
        if (!isPlanSnapshot(value) && !isPlanReport(value)) {
          const hint = typeof value === "object" && value !== null && !Array.isArray(value) && "devices" in value && !("system" in value)
            ? `is a layout, not a saved plan; plan it with \`vm-allocator plan ${command.file}\``
            : `is not a saved plan (its "format" is neither "${PLAN_FORMAT}" nor "${REPORT_FORMAT}"); write one with \`vm-allocator plan --save\` or \`--format json\``;
          throw InputError.of(hint, source);
        }
        const loaded = load(value, source);
        const style = useColor(environment.stdout, environment.env, command.colorAllowed) ? ANSI : PLAIN;
        return { status: 0, stdout: render(loaded, command.format, style), stderr: "" };
      }
      case "check":
        return check(command.files, environment);
    }
  } catch (error) {
    if (!(error instanceof InputError)) throw error;
    return { status: 2, stdout: "", stderr: `${usageLine(error, errorStyle)}\n` };
  }
}

/** The one line `plan` and `show` print for bad input: the first problem and how many more. */
function usageLine(error: InputError, style: Style): string {
  const first = formatProblem(error.file, error.problems[0] ?? { path: "", message: error.message });
  const more = error.problems.length - 1;
  const tail = more === 0 ? "" : ` (and ${more} more problem${more === 1 ? "" : "s"}; \`vm-allocator check\` lists them all)`;
  return `vm-allocator: ${style.error("error:")} ${first}${tail}`;
}

function render(plan: LoadedPlan, format: Format, style: Style): string {
  switch (format) {
    case "text":
      return renderText(planView(plan), style);
    case "iomem":
      return renderIomem(planView(plan));
    case "json":
      return renderJson(planView(plan), plan.snapshot);
    case "svg":
      return renderSvg(planView(plan));
    case "cmdline":
      return renderCmdline(plan);
    case "dts":
      return renderDts(plan);
  }
}

/** Validates and plans a layout; every problem becomes an {@link InputError}. */
function plan(value: JsonValue, source: string): PlanSnapshot {
  const problems = new Problems();
  const layout = readLayout(value, problems);
  if (layout === undefined) throw new InputError(problems.list, source);
  const outcome = planLayout(layout, { source });
  if (outcome.snapshot === undefined) throw new InputError(outcome.problems, source);
  return outcome.snapshot;
}

/** Validates a saved plan or a plan report; every problem becomes an {@link InputError}. */
function load(value: unknown, source: string): LoadedPlan {
  const problems = new Problems();
  const loaded = readSaved(value, problems);
  if (loaded === undefined) throw new InputError(problems.list, source);
  return loaded;
}

/**
 * Reads a plan just made back through the snapshot validator, so that `plan` renders exactly
 * what `show` would render from the saved file. A problem here is a bug, not bad input.
 */
function selfCheck(snapshot: PlanSnapshot): LoadedPlan {
  const problems = new Problems();
  const loaded = readPlanSnapshot(JSON.parse(JSON.stringify(snapshot)), problems);
  if (loaded === undefined) {
    throw new Error(`the plan failed its own validation: ${problems.list.map((p) => formatProblem(undefined, p)).join("; ")}`);
  }
  return loaded;
}

function check(files: readonly string[], environment: Environment): Outcome {
  const out: string[] = [];
  const err: string[] = [];
  for (const file of files) {
    const source = file === "-" ? "stdin" : file;
    const problems: Problem[] = [];
    let summary = "";
    try {
      const value = readJsonFile(file, environment);
      const found = new Problems();
      if (isPlanSnapshot(value) || isPlanReport(value)) {
        const loaded = readSaved(value, found);
        problems.push(...found.list);
        const what = isPlanReport(value) ? "plan report" : "saved plan";
        if (loaded !== undefined) summary = `${what}, ${count(loaded.snapshot.devices.length, "device")}`;
      } else {
        const layout = readLayout(value, found, { partial: true });
        problems.push(...found.list);
        if (layout !== undefined) {
          const outcome = planLayout(layout, { source, keepGoing: true });
          problems.push(...outcome.problems);
          summary = `layout, ${count(layout.devices.length, "device")} planned`;
        }
        problems.splice(0, problems.length, ...sortProblems(problems));
      }
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      problems.push(...error.problems);
    }
    if (problems.length === 0) out.push(`${source}: ok (${summary})`);
    else for (const p of problems) err.push(formatProblem(source, p));
  }
  const failed = err.length > 0;
  return { status: failed ? 2 : 0, stdout: failed ? "" : `${out.join("\n")}\n`, stderr: failed ? `${err.join("\n")}\n` : "" };
}

/** Reads what `plan` writes for programs: a saved plan (`--save`) or a report (`--format json`). */
function readSaved(value: unknown, problems: Problems): LoadedPlan | undefined {
  return isPlanReport(value) ? readPlanReport(value, problems) : readPlanSnapshot(value, problems);
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Reads and parses a JSON input file (`-` is stdin); any failure is an {@link InputError}. */
function readJsonFile(file: string, environment: Environment): JsonValue {
  const source = file === "-" ? "stdin" : file;
  let bytes: Buffer;
  try {
    if (file === "-") {
      bytes = environment.readStdin();
    } else {
      const st = statSync(file);
      if (st.isDirectory()) throw InputError.of("is a directory, not a file", source);
      if (st.size > MAX_INPUT) throw InputError.of(`is ${st.size} bytes; input files are limited to ${MAX_INPUT} bytes`, source);
      bytes = readFileSync(file);
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw InputError.of(`cannot read: ${systemReason(error)}`, source);
  }
  if (bytes.length > MAX_INPUT) throw InputError.of(`is over ${MAX_INPUT} bytes; input files are limited to that`, source);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw InputError.of("is not valid UTF-8 text", source);
  }
  try {
    return parseJson(text);
  } catch (error) {
    if (error instanceof JsonSyntaxError) throw new InputError([{ path: `${error.line}:${error.column}`, message: `invalid JSON: ${error.message}` }], source);
    throw error;
  }
}

/** A file error in words (`no such file or directory`), without Node's syscall decoration. */
function systemReason(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const reasons: Record<string, string> = {
    ENOENT: "no such file or directory",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EISDIR: "is a directory",
    ENOTDIR: "a component of the path is not a directory",
    ENAMETOOLONG: "file name too long",
    ELOOP: "too many symbolic links",
    EMFILE: "too many open files",
    EAGAIN: "no input available",
  };
  if (typeof code === "string" && Object.hasOwn(reasons, code)) return reasons[code]!;
  return error instanceof Error ? error.message : String(error);
}

/** Writes `text` to `file` through a temporary file and a rename, so `file` is never half written. */
function writeAtomically(file: string, text: string): void {
  const temp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, text, { flag: "wx" });
    renameSync(temp, file);
  } catch (error) {
    rmSync(temp, { force: true });
    throw InputError.of(`cannot write the plan: ${systemReason(error)}`, file);
  }
}

/** The package version, from the package.json next to `dist/`. */
function version(): string {
  const text = readFileSync(new URL("../../package.json", import.meta.url), "utf8");
  const v = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof v !== "string") throw new Error("package.json has no version");
  return v;
}
