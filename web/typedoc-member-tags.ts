/**
 * A typedoc plugin: documents the members of an inline object type from `@property` tags of the
 * declaration that holds it, e.g. `@property min …` on a `window: { min: bigint; max: bigint }`
 * property, on a type alias whose union has object members, or on a function whose return type is
 * an object literal. typedoc itself reads `@property` only for direct children, so without this a
 * one-line object type could be documented only by rewriting its code line.
 *
 * A tag naming a member no inline object type of its holder has is a warning (an error under
 * `npm run docs`), so a renamed member cannot leave a stale comment behind.
 *
 * Loaded by typedoc.json from dist/ (`npm run docs` builds first).
 */
import {
  Comment,
  Converter,
  DeclarationReflection,
  SignatureReflection,
  type Application,
  type CommentDisplayPart,
  type CommentTag,
  type Context,
  type SomeType,
} from "typedoc";

/** An object-literal declaration inside a type, and whether typedoc's theme shows its members' comments. */
export interface InlineObject {
  readonly declaration: DeclarationReflection;
  /** False behind a `readonly` operator (`readonly { ... }[]`), which the theme does not expand. */
  readonly shown: boolean;
}

/** The object-literal declarations a type is made of (through unions, intersections, arrays and `readonly`). */
export function inlineObjects(type: SomeType | undefined, shown = true): InlineObject[] {
  if (type === undefined) return [];
  switch (type.type) {
    case "reflection":
      return [{ declaration: type.declaration, shown }];
    case "union":
    case "intersection":
      return type.types.flatMap((t) => inlineObjects(t, shown));
    case "array":
      return inlineObjects(type.elementType, shown);
    case "typeOperator":
      return inlineObjects(type.target, false);
    default:
      return [];
  }
}

/** The types whose inline objects a reflection's `@property` tags may document. */
function holdersOf(reflection: DeclarationReflection | SignatureReflection): SomeType[] {
  const types: SomeType[] = [];
  if (reflection.type !== undefined) types.push(reflection.type);
  if (reflection instanceof DeclarationReflection) {
    for (const s of reflection.signatures ?? []) if (s.type !== undefined) types.push(s.type);
  }
  return types;
}

/** typedoc's plugin entry point. */
export function load(app: Application): void {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context: Context) => {
    for (const reflection of Object.values(context.project.reflections)) {
      if (!(reflection instanceof DeclarationReflection || reflection instanceof SignatureReflection)) continue;
      const comment = reflection.comment;
      if (comment === undefined) continue;
      const tags = comment.blockTags.filter((t) => (t.tag === "@property" || t.tag === "@prop") && t.name !== undefined);
      if (tags.length === 0) continue;
      // Tags naming a direct child (an interface's own property) are left to typedoc.
      const own = (name: string) => reflection instanceof DeclarationReflection && (reflection.children ?? []).some((c) => c.name === name);
      const objects = holdersOf(reflection).flatMap((t) => inlineObjects(t));
      const used = new Set<CommentTag>();
      const unseen: CommentDisplayPart[] = [];
      for (const tag of tags) {
        const name = tag.name!;
        if (own(name)) continue;
        const found = objects.flatMap((o) => (o.declaration.children ?? []).filter((c) => c.name === name).map((member) => ({ member, shown: o.shown })));
        if (found.length === 0) {
          app.logger.warn(`typedoc-member-tags: @property ${name} of ${reflection.getFriendlyFullName()} names no member of its inline object types`);
          continue;
        }
        for (const { member } of found) {
          member.comment = new Comment(Comment.cloneDisplayParts(tag.content));
          if (comment.sourcePath !== undefined) member.comment.sourcePath = comment.sourcePath;
        }
        // Where the theme will not show the members, the holder's own comment lists them.
        if (found.some((f) => !f.shown)) unseen.push({ kind: "text", text: `\n- \`${name}\`: ` }, ...Comment.cloneDisplayParts(tag.content));
        used.add(tag);
      }
      if (unseen.length > 0) comment.summary.push({ kind: "text", text: "\n" }, ...unseen);
      comment.blockTags = comment.blockTags.filter((t) => !used.has(t));
    }
  });
}
