/**
 * The little of the DOM the playground page uses, typed here instead of adding TypeScript's DOM
 * library to the one compilation that also checks src/: with `lib.dom` every file would see
 * globals such as `name`, `length` or `status`, and a library module could use `document`
 * without a compile error.
 */

/** An event as the page handles it. */
export interface DomEvent {
  readonly target: unknown;
  preventDefault(): void;
}

/** What the page does with elements. */
export interface Element {
  id: string;
  className: string;
  textContent: string | null;
  hidden: boolean;
  title: string;
  readonly dataset: Record<string, string | undefined>;
  readonly classList: { toggle(name: string, force?: boolean): boolean; contains(name: string): boolean };
  readonly children: ArrayLike<Element>;
  readonly parentElement: Element | null;
  readonly localName: string;
  setAttribute(name: string, value: string): void;
  addEventListener(type: string, listener: (event: DomEvent) => void): void;
  append(...nodes: (Element | string)[]): void;
  replaceChildren(...nodes: (Element | string)[]): void;
  closest(selector: string): Element | null;
  querySelector(selector: string): Element | null;
  querySelectorAll(selector: string): ArrayLike<Element>;
  attachShadow(init: { mode: "open" }): ShadowRoot;
  readonly shadowRoot: ShadowRoot | null;
  focus(): void;
  click(): void;
  remove(): void;
  scrollTop: number;
  readonly scrollHeight: number;
}

/** A shadow root: the SVG map lives in one, so its `<style>` cannot restyle the page. */
export interface ShadowRoot {
  innerHTML: string;
  addEventListener(type: string, listener: (event: DomEvent) => void): void;
  querySelector(selector: string): Element | null;
}

/** The layout editor. */
export interface TextArea extends Element {
  value: string;
  selectionStart: number;
  selectionEnd: number;
  setSelectionRange(start: number, end: number): void;
}

/** A `<select>` and its options. */
export interface Select extends Element {
  value: string;
}

/** An `<option>` or `<optgroup>`. */
export interface OptionElement extends Element {
  value: string;
  label: string;
}

/** A button. */
export interface Button extends Element {
  disabled: boolean;
}

/** A file chosen in an `<input type="file">`. */
export interface File {
  readonly name: string;
  text(): Promise<string>;
}

/** An `<input type="file">`. */
export interface FileInput extends Element {
  value: string;
  readonly files: ArrayLike<File> | null;
}

/** A link, used to download the plan. */
export interface Anchor extends Element {
  href: string;
  download: string;
}

/** The document. */
export interface Document {
  getElementById(id: string): Element | null;
  createElement(tag: string): Element;
  readonly body: Element;
}

/** The globals the page uses. */
export interface Window {
  readonly document: Document;
  readonly Blob: new (parts: string[], options: { type: string }) => object;
  readonly URL: { createObjectURL(blob: object): string; revokeObjectURL(url: string): void };
  setTimeout(f: () => void, ms: number): number;
  clearTimeout(handle: number): void;
}

/** The browser's globals, typed as above. */
export const browser = globalThis as unknown as Window;

/** The element with `id`; a missing one is a bug in index.html. */
export function byId<T extends Element = Element>(id: string): T {
  const e = browser.document.getElementById(id);
  if (e === null) throw new Error(`index.html has no #${id}`);
  return e as T;
}

/** A new element with a class and text. */
export function make(tag: string, className = "", text = ""): Element {
  const e = browser.document.createElement(tag);
  if (className !== "") e.className = className;
  if (text !== "") e.textContent = text;
  return e;
}
