/**
 * A typedoc plugin: every name a README tour example imports from "vm-allocator" gets a "See"
 * section linking to those examples on the front page (the README). The links are derived from
 * the README itself, so a new tour section is linked without touching the doc comments in src/,
 * and typedoc validates each anchor like any other relative link (a renamed heading is a warning,
 * and `npm run docs` treats warnings as errors).
 *
 * Loaded by typedoc.json from dist/ (`npm run docs` builds first).
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { CommentTag, Comment, Converter, type Application, type CommentDisplayPart, type Context, type NormalizedPath } from "typedoc";

/** A `###` section of the tour and the library names its code blocks import. */
export interface TourSection {
  readonly heading: string;
  readonly names: readonly string[];
}

/** The `## API tour` heading the sections are read from. */
const TOUR_HEADING = "## API tour";

/** The tour's `###` sections with the names their ```js blocks import from "vm-allocator". */
export function tourSections(readme: string): TourSection[] {
  const start = readme.indexOf(`\n${TOUR_HEADING}\n`);
  if (start < 0) return [];
  const rest = readme.slice(start + TOUR_HEADING.length + 2);
  const end = rest.search(/^## /m);
  const tour = end < 0 ? rest : rest.slice(0, end);
  const sections: TourSection[] = [];
  for (const part of tour.split(/^### /m).slice(1)) {
    const heading = part.slice(0, part.indexOf("\n")).trim();
    const names = new Set<string>();
    for (const block of part.matchAll(/```js\n([\s\S]*?)```/g)) {
      for (const m of block[1]!.matchAll(/import\s*\{([^}]*)\}\s*from\s*"vm-allocator"/g)) {
        for (const n of m[1]!.split(",")) {
          const name = n.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!;
          if (name !== "") names.add(name);
        }
      }
    }
    if (names.size > 0) sections.push({ heading, names: [...names] });
  }
  return sections;
}

/**
 * The anchor typedoc gives a markdown heading: its `Slugger`, lowercased, over the heading's
 * plain text (typedoc leaves code spans out, where GitHub keeps their text).
 */
export function headingAnchor(heading: string): string {
  const slug = heading
    .replace(/`[^`]*`/g, "")
    .trim()
    .replace(/[\u2000-\u206F\u2E00-\u2E7F\\'!"#$%&()*+,./:;<=>?@[\]^`{|}~]/g, "")
    .replace(/\s/g, "-")
    .replace(/--+/, "-");
  return (slug || "_").toLocaleLowerCase();
}

/** typedoc's plugin entry point. */
export function load(app: Application): void {
  app.converter.on(Converter.EVENT_RESOLVE_END, (context: Context) => {
    const readmeOption = app.options.getValue("readme");
    if (readmeOption === "none" || readmeOption === "") return;
    const readmePath = resolve(readmeOption).split("\\").join("/");
    const sections = tourSections(readFileSync(readmePath, "utf8"));
    if (sections.length === 0) {
      app.logger.warn(`typedoc-tour-links: ${readmeOption} has no "${TOUR_HEADING}" section with examples`);
      return;
    }
    const project = context.project;
    const byName = new Map<string, TourSection[]>();
    for (const section of sections) {
      for (const name of section.names) byName.set(name, [...(byName.get(name) ?? []), section]);
    }
    for (const [name, uses] of byName) {
      const reflection = project.getChildByName(name);
      if (reflection === undefined) {
        app.logger.warn(`typedoc-tour-links: the README tour imports ${name}, which the API reference does not document`);
        continue;
      }
      const content: CommentDisplayPart[] = [{ kind: "text", text: "The README tour uses it in " }];
      uses.forEach((section, i) => {
        const { target, anchor } = project.files.registerAbsolute(`${readmePath}#${headingAnchor(section.heading)}` as NormalizedPath);
        if (i > 0) content.push({ kind: "text", text: i === uses.length - 1 ? " and " : ", " });
        content.push({ kind: "text", text: `[${section.heading}](` });
        content.push({ kind: "relative-link", text: `README.md#${anchor ?? ""}`, target, targetAnchor: anchor });
        content.push({ kind: "text", text: ")" });
      });
      content.push({ kind: "text", text: "." });
      reflection.comment ??= new Comment();
      reflection.comment.blockTags.push(new CommentTag("@see", content));
    }
  });
}
