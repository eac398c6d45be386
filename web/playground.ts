/**
 * The playground page: a layout editor and, beside it, the plan the command would print for it,
 * replanned as you type. Everything runs in the page (the library and the command's own
 * validator, planner and renderers, bundled by web/bundle.ts), so it works offline and from
 * `file://`.
 *
 * State shows in attributes the tests wait on: `body[data-state]` is `ok` or `error`,
 * `body[data-checks]` counts the layouts and plans read, and `#map[data-generation]` the plans drawn.
 */
import { DEFAULT_LAYOUT } from "../cli/default-layout.js";
import type { LoadedPlan } from "../cli/snapshot.js";
import { layoutNames } from "../src/system/layouts.js";
import { browser, byId, make, type Anchor, type Button, type Element, type FileInput, type OptionElement, type Select, type TextArea } from "./dom.js";
import { locatePath } from "./json-locate.js";
import { guestText, loadGuest, loadSavedText, locate, planText, render, savedPlanText, type GuestRenderers, type Located } from "./pipeline.js";

/** A layout to start from. */
interface Start {
  readonly key: string;
  readonly label: string;
  /** How problems and the plan name the layout (the command prints the file name). */
  readonly source: string;
  readonly text: string;
}

/** An example layout file, embedded in index.html by the bundler. */
interface EmbeddedExample {
  readonly name: string;
  readonly text: string;
}

const editor = byId<TextArea>("layout");
const startSelect = byId<Select>("start");
const problemList = byId("problems");
const status = byId("status");
const map = byId("map");
const hover = byId("hover");
const download = byId<Button>("download");
const loadInput = byId<FileInput>("load");
const mapRoot = map.attachShadow({ mode: "open" });

/** JSON on one line with spaces inside brackets, as the example files write devices. */
function inline(value: unknown): string {
  if (Array.isArray(value)) return value.length === 0 ? "[]" : `[ ${value.map(inline).join(", ")} ]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    return entries.length === 0 ? "{}" : `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${inline(v)}`).join(", ")} }`;
  }
  return JSON.stringify(value);
}

/** A layout as the example files lay it out: one top-level field per line, one device (or reservation) per line. */
function pretty(layout: Record<string, unknown>): string {
  const fields = Object.entries(layout).map(([k, v]) => {
    const list = Array.isArray(v) && v.length > 0 ? `[\n${v.map((x) => `    ${inline(x)}`).join(",\n")}\n  ]` : inline(v);
    return `  ${JSON.stringify(k)}: ${list}`;
  });
  return `{\n${fields.join(",\n")}\n}\n`;
}

function starts(): Start[] {
  const list: Start[] = [{ key: "default", label: "built-in default (what `vm-allocator plan` plans)", source: "layout.json", text: pretty(DEFAULT_LAYOUT as Record<string, unknown>) }];
  for (const name of layoutNames) {
    list.push({ key: `preset:${name}`, label: `preset ${name}, no devices`, source: "layout.json", text: pretty({ preset: name, devices: [] }) });
  }
  const embedded = JSON.parse(byId("examples").textContent ?? "[]") as EmbeddedExample[];
  for (const e of embedded) list.push({ key: `example:${e.name}`, label: `examples/layouts/${e.name}`, source: e.name, text: e.text });
  return list;
}

const START = starts();
let source = START[0]!.source;
/** The plan on screen, and what it was made from. */
let shown: { readonly plan: LoadedPlan; readonly from: string } | undefined;
let generation = 0;
let checks = 0;
let guest: GuestRenderers | undefined;
let timer: number | undefined;

function fillStarts(): void {
  const groups: [string, Element][] = [];
  const group = (label: string): Element => {
    let g = groups.find(([l]) => l === label)?.[1];
    if (g === undefined) {
      g = make("optgroup");
      (g as OptionElement).label = label;
      groups.push([label, g]);
      startSelect.append(g);
    }
    return g;
  };
  for (const s of START) {
    const option = make("option", "", s.label) as OptionElement;
    option.value = s.key;
    group(s.key === "default" ? "Default" : s.key.startsWith("preset:") ? "Presets" : "Examples").append(option);
  }
}

/** Shows problems under the editor; each one selects its field in the editor when clicked. */
function showProblems(problems: readonly Located[], text: string | undefined): void {
  problemList.replaceChildren(
    ...problems.map((p) => {
      const li = make("li");
      const button = make("button", "problem", p.line) as Button;
      button.setAttribute("type", "button");
      button.dataset["path"] = p.path;
      const span = text === undefined ? undefined : locatePath(text, p.path);
      if (span === undefined) button.disabled = true;
      else
        button.addEventListener("click", () => {
          editor.focus();
          editor.setSelectionRange(span.start, span.end);
        });
      li.append(button);
      return li;
    }),
  );
}

/** The hovered region is outlined, so it is clear which one the line above the map describes. */
const MAP_STYLE = "svg{display:block}g:hover>rect{stroke:#111;stroke-width:2px}";

function setText(id: string, text: string, error = false): void {
  const e = byId(id);
  e.textContent = text;
  e.classList.toggle("error", error);
}

/** Draws a plan in every view. */
function show(plan: LoadedPlan, from: string): void {
  const r = render(plan);
  // The SVG document minus its XML declaration, inside the shadow root.
  mapRoot.innerHTML = `<style>${MAP_STYLE}</style>${r.svg.replace(/^<\?xml[^>]*\?>\s*/, "")}`;
  setText("text", r.text);
  setText("iomem", r.iomem);
  if (guest !== undefined) {
    const g = guest;
    const cmd = guestText(() => g.renderCmdline(plan));
    setText("cmdline", "text" in cmd ? cmd.text || "(no virtio-mmio device: nothing to add to the command line)" : cmd.error, "error" in cmd);
    const dts = guestText(() => g.renderDts(plan));
    setText("dts", "text" in dts ? dts.text : dts.error, "error" in dts);
  }
  shown = { plan, from };
  map.dataset["generation"] = String(++generation);
  download.disabled = false;
  hover.textContent = "Hover a region for its exact range and owner.";
  const n = plan.snapshot.devices.length;
  status.textContent = `${from}: ${n} device${n === 1 ? "" : "s"}, preset ${plan.snapshot.preset}`;
}

function setState(state: "ok" | "error"): void {
  browser.document.body.dataset["state"] = state;
  browser.document.body.dataset["checks"] = String(++checks);
  map.classList.toggle("stale", state === "error");
  byId("stale").hidden = state !== "error" || shown === undefined;
}

/** Plans the editor's text; on failure the problems show and the last good plan stays. */
function replan(): void {
  timer = undefined;
  const text = editor.value;
  const outcome = planText(text, source);
  if (outcome.plan !== undefined) {
    showProblems([], text);
    show(outcome.plan, source);
    setState("ok");
  } else {
    showProblems(locate(outcome.problems, source), text);
    setState("error");
    const n = outcome.problems.length;
    status.textContent = `${source}: ${n} problem${n === 1 ? "" : "s"}`;
  }
}

function scheduleReplan(): void {
  if (timer !== undefined) browser.clearTimeout(timer);
  timer = browser.setTimeout(replan, 150);
}

function selectStart(key: string): void {
  const s = START.find((x) => x.key === key) ?? START[0]!;
  startSelect.value = s.key;
  source = s.source;
  editor.value = s.text;
  replan();
}

/** The tab buttons switch which view is visible. */
function selectTab(name: string): void {
  for (const b of Array.from(byId("tabs").querySelectorAll("button"))) {
    const on = b.dataset["tab"] === name;
    b.classList.toggle("active", on);
    b.setAttribute("aria-selected", String(on));
    byId(`view-${b.dataset["tab"] ?? ""}`).hidden = !on;
  }
  hover.hidden = name !== "map";
}

/** Hovering a region shows its tooltip (`<title>`: owner, exact range, size, how it is held). */
function onHover(target: unknown): void {
  const g = (target as Element | null)?.closest?.("g");
  const title = g?.querySelector(":scope > title");
  if (title !== null && title !== undefined) hover.textContent = title.textContent;
}

function savePlan(): void {
  if (shown === undefined) return;
  const blob = new browser.Blob([savedPlanText(shown.plan.snapshot)], { type: "application/json" });
  const a = make("a") as Anchor;
  a.href = browser.URL.createObjectURL(blob);
  a.download = `${shown.from.replace(/\.json$/, "")}.plan.json`;
  browser.document.body.append(a);
  a.click();
  a.remove();
  browser.setTimeout(() => browser.URL.revokeObjectURL(a.href), 1000);
}

async function loadPlan(): Promise<void> {
  const file = loadInput.files?.[0];
  if (file === undefined) return;
  const text = await file.text();
  loadInput.value = "";
  const outcome = loadSavedText(text, file.name);
  if (outcome.plan === undefined) {
    showProblems(locate(outcome.problems, file.name), undefined);
    status.textContent = `${file.name}: not loaded`;
    setState("error");
    return;
  }
  showProblems([], undefined);
  show(outcome.plan, file.name);
  status.textContent = `${file.name}: saved plan, ${outcome.plan.snapshot.devices.length} devices (edit the layout to plan it again)`;
  setState("ok");
}

async function main(): Promise<void> {
  fillStarts();
  guest = await loadGuest();
  for (const id of ["cmdline", "dts"]) byId(`tab-${id}`).hidden = guest === undefined;
  byId("guest-note").hidden = guest !== undefined;
  editor.addEventListener("input", scheduleReplan);
  startSelect.addEventListener("change", () => selectStart(startSelect.value));
  download.addEventListener("click", savePlan);
  loadInput.addEventListener("change", () => void loadPlan());
  mapRoot.addEventListener("mouseover", (e) => onHover(e.target));
  for (const b of Array.from(byId("tabs").querySelectorAll("button"))) b.addEventListener("click", () => selectTab(b.dataset["tab"] ?? "map"));
  selectTab("map");
  selectStart("default");
}

void main();
