/**
 * Reading back the report that `plan --format json` writes, so that `show` and `check` take what
 * the command gives. The report carries the saved plan it was made from (`plan`, exactly what
 * `plan --save` writes): that is what is read. The rest of the report (the pools tiled into
 * segments, the id assignments, the devices) is derived from it for programs, so a report whose
 * derived part says something other than its plan has been edited, and which of the two is
 * meant cannot be known: every difference is a problem, named by its path.
 */
import { describeJson, field, item, Problems } from "./diagnostics.js";
import { isJsonObject } from "./json-source.js";
import { REPORT_FORMAT, REPORT_VERSION, renderJson } from "./render/json.js";
import { readPlanSnapshot, type LoadedPlan } from "./snapshot.js";
import { planView } from "./view.js";

/** True when `value` says it is a plan report. */
export function isPlanReport(value: unknown): boolean {
  return isJsonObject(value) && value["format"] === REPORT_FORMAT;
}

/** At most this many differences between a report and its plan are listed. */
const MAX_DIFFERENCES = 20;

/**
 * Validates a parsed report, recording every problem found in `problems`.
 * @returns the plan it carries, or undefined when there was any problem.
 */
export function readPlanReport(value: unknown, problems: Problems): LoadedPlan | undefined {
  if (!isJsonObject(value)) {
    problems.add("", `a plan report must be a JSON object, got ${describeJson(value)}`);
    return undefined;
  }
  if (value["format"] !== REPORT_FORMAT) problems.add("format", `must be "${REPORT_FORMAT}", got ${describeJson(value["format"])}`);
  if (value["version"] !== REPORT_VERSION) {
    problems.add("version", `unsupported version ${describeJson(value["version"])}; this vm-allocator reads version ${REPORT_VERSION}`);
    return undefined;
  }
  if (value["plan"] === undefined) {
    problems.add("plan", "is missing: the report has no saved plan to read back; write the report again with `vm-allocator plan --format json`");
    return undefined;
  }
  const inner = new Problems();
  const loaded = readPlanSnapshot(value["plan"], inner);
  for (const p of inner.list) problems.add(p.path === "" ? "plan" : field("plan", p.path), p.message);
  if (loaded === undefined || problems.list.length > 0) return undefined;

  const expected: unknown = JSON.parse(renderJson(planView(loaded), loaded.snapshot));
  const differences = new Problems();
  compare(value, expected, "", differences);
  const shown = differences.list.slice(0, MAX_DIFFERENCES);
  problems.list.push(...shown);
  const more = differences.list.length - shown.length;
  if (more > 0) problems.add("", `and ${more} more difference${more === 1 ? "" : "s"} between the report and its plan`);
  return differences.empty ? loaded : undefined;
}

/** Records where `actual` (the file) differs from `expected` (what its plan gives). */
function compare(actual: unknown, expected: unknown, path: string, problems: Problems): void {
  if (Array.isArray(expected) && Array.isArray(actual)) {
    if (actual.length !== expected.length) {
      problems.add(path, `has ${actual.length} entries, but the plan in this report gives ${expected.length}`);
      return;
    }
    expected.forEach((e, i) => compare(actual[i], e, item(path, i), problems));
    return;
  }
  if (isJsonObject(expected) && isJsonObject(actual)) {
    for (const key of Object.keys(actual)) if (!Object.hasOwn(expected, key)) problems.add(field(path, key), "unknown field");
    for (const [key, e] of Object.entries(expected)) {
      if (!Object.hasOwn(actual, key)) problems.add(field(path, key), `is missing; the plan in this report gives ${describeJson(e)}`);
      else compare(actual[key], e, field(path, key), problems);
    }
    return;
  }
  // Different kinds of value, or two different scalars.
  if (actual !== expected) problems.add(path, `is ${describeJson(actual)}, but the plan in this report gives ${describeJson(expected)}`);
}
