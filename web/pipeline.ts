/**
 * What `vm-allocator plan` and `show` do between reading a file and printing, for the browser.
 * `cli/run.ts` cannot be loaded there (it reads files and the package version through `node:fs`),
 * so this module strings the same browser-safe steps together: the strict JSON reader, the layout
 * validator, the planner, the saved-plan validator (the round trip `plan` makes before it renders)
 * and the renderers. Problems come back as the command prints them: `file: field.path: message`.
 */
import { InputError, formatProblem, Problems, sortProblems, type Problem } from "../cli/diagnostics.js";
import { JsonSyntaxError, parseJson, type JsonValue } from "../cli/json-source.js";
import { readLayout } from "../cli/layout-file.js";
import { planLayout } from "../cli/plan.js";
import { renderIomem } from "../cli/render/iomem.js";
import { renderSvg } from "../cli/render/svg.js";
import { renderText } from "../cli/render/text.js";
import { isPlanReport, readPlanReport } from "../cli/report.js";
import { isPlanSnapshot, readPlanSnapshot, type LoadedPlan, type PlanSnapshot } from "../cli/snapshot.js";
import { planView } from "../cli/view.js";

/** A plan, or every problem that stopped it. */
export type Outcome = { readonly plan: LoadedPlan; readonly problems: readonly [] } | { readonly plan: undefined; readonly problems: readonly Problem[] };

/** Where a problem is, for the editor: a field path or a `line:column` of a JSON syntax error. */
export interface Located extends Problem {
  /** The line the command prints for it (`layout.json: devices[3].requests[0].size: ...`). */
  readonly line: string;
}

const failed = (problems: readonly Problem[]): Outcome => ({ plan: undefined, problems });

/** Parses JSON text as the command does: duplicate keys and syntax errors are problems at `line:column`. */
function parse(text: string): { readonly value: JsonValue } | { readonly problem: Problem } {
  try {
    return { value: parseJson(text) };
  } catch (error) {
    if (error instanceof JsonSyntaxError) return { problem: { path: `${error.line}:${error.column}`, message: `invalid JSON: ${error.message}` } };
    throw error;
  }
}

/**
 * Plans a layout file's text as `vm-allocator plan FILE` does. When it cannot be planned, the
 * problems are those `vm-allocator check FILE` lists: every one the validator finds, then the
 * planning failures of each device the others leave room for, in file order.
 */
export function planText(text: string, source: string): Outcome {
  const parsed = parse(text);
  if ("problem" in parsed) return failed([parsed.problem]);
  const value = parsed.value;
  if (isPlanSnapshot(value) || isPlanReport(value)) {
    return failed([{ path: "", message: "is a saved plan, not a layout; load it with \"Load plan\" instead" }]);
  }
  const layout = readLayout(value, new Problems());
  const outcome = layout === undefined ? undefined : planLayout(layout, { source });
  if (outcome?.snapshot === undefined) return failed(checkProblems(value, source));
  // `plan` renders what `show` would render from the saved file: read the snapshot back.
  const back = new Problems();
  const loaded = readPlanSnapshot(JSON.parse(JSON.stringify(outcome.snapshot)), back);
  if (loaded === undefined) throw new Error(`the plan failed its own validation: ${back.list.map((p) => formatProblem(undefined, p)).join("; ")}`);
  return { plan: loaded, problems: [] };
}

/** Every problem of a layout, as `check` finds them. */
function checkProblems(value: JsonValue, source: string): Problem[] {
  const found = new Problems();
  const problems: Problem[] = [];
  const layout = readLayout(value, found, { partial: true });
  problems.push(...found.list);
  if (layout !== undefined) problems.push(...planLayout(layout, { source, keepGoing: true }).problems);
  return sortProblems(problems);
}

/** Reads a saved plan (`plan --save`) or a plan report (`plan --format json`), as `show` does. */
export function loadSavedText(text: string, source: string): Outcome {
  const parsed = parse(text);
  if ("problem" in parsed) return failed([parsed.problem]);
  const value = parsed.value;
  if (!isPlanSnapshot(value) && !isPlanReport(value)) {
    return failed([{ path: "", message: `is not a saved plan; ${source} looks like ${isLayoutLike(value) ? "a layout: paste it into the editor" : "something else"}` }]);
  }
  const problems = new Problems();
  const loaded = isPlanReport(value) ? readPlanReport(value, problems) : readPlanSnapshot(value, problems);
  return loaded === undefined ? failed(problems.list) : { plan: loaded, problems: [] };
}

function isLayoutLike(value: JsonValue): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && "devices" in value && !("system" in value);
}

/** Each problem with the line the command prints for it. */
export function locate(problems: readonly Problem[], source: string): Located[] {
  return problems.map((p) => ({ ...p, line: formatProblem(source, p) }));
}

/** The saved-plan file `plan --save` writes for this plan. */
export function savedPlanText(snapshot: PlanSnapshot): string {
  return `${JSON.stringify(snapshot, null, 2)}\n`;
}

/** The renderings of the command's formats that the page shows. */
export interface Renderings {
  readonly svg: string;
  readonly text: string;
  readonly iomem: string;
}

/** Renders a plan as `--format svg`, `text` (without colour) and `iomem`. */
export function render(plan: LoadedPlan): Renderings {
  const view = planView(plan);
  return { svg: renderSvg(view), text: renderText(view), iomem: renderIomem(view) };
}

/** What the guest renderers (`--format cmdline` and `dts`) export, where this build has them. */
export interface GuestRenderers {
  renderCmdline(plan: LoadedPlan): string;
  renderDts(plan: LoadedPlan): string;
}

/**
 * Where the guest renderers live, relative to this module. A variable rather than a literal, so
 * that this file compiles whether or not that module exists yet; the bundler (web/bundle.ts)
 * includes it when it was built.
 */
export const GUEST_MODULE = "../cli/render/guest.js";

/** The guest renderers, or undefined when this build has none. */
export async function loadGuest(): Promise<GuestRenderers | undefined> {
  try {
    const m = (await import(GUEST_MODULE)) as Partial<GuestRenderers>;
    return typeof m.renderCmdline === "function" && typeof m.renderDts === "function" ? (m as GuestRenderers) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A guest rendering, or the problem the command would report instead (a devicetree of an x86
 * machine). Any other failure is shown as an internal error rather than thrown: the guest view
 * is an extra, and must not take the map and tables down with it.
 */
export function guestText(f: () => string): { readonly text: string } | { readonly error: string } {
  try {
    return { text: f() };
  } catch (error) {
    if (error instanceof InputError) return { error: error.problems.map((p) => formatProblem(undefined, p)).join("\n") };
    return { error: `internal error: ${error instanceof Error ? error.message : String(error)}` };
  }
}
