/**
 * Names that several parts of the contract share: template references, environment variable
 * names and metadata keys. Kept apart so machine and template requests can both use them.
 */

/** A template reference: `base`, `name`, `team/name` or `team/name:tag`. */
export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]*(\/[a-z0-9][a-z0-9._-]*)*(:[a-z0-9][a-z0-9._-]*)?$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const METADATA_KEY = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;

/** The built-in template every other one starts from (a Debian bookworm root filesystem). */
export const BASE_TEMPLATE = 'base';
/** The tag a template name without `:tag` means. */
export const DEFAULT_TAG = 'latest';

/** Splits `team/app:stable` into name and tag (`latest` when none is given). */
export function parseTemplateRef(ref: string): { name: string; tag: string } {
  const i = ref.lastIndexOf(':');
  return i < 0 ? { name: ref, tag: DEFAULT_TAG } : { name: ref.slice(0, i), tag: ref.slice(i + 1) };
}

/** The canonical form of a reference: `base`, or `name:tag`. */
export function canonicalTemplateRef(ref: string): string {
  if (ref === BASE_TEMPLATE) return ref;
  const { name, tag } = parseTemplateRef(ref);
  return `${name}:${tag}`;
}
