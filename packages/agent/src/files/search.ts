import { stat } from 'node:fs/promises';
import {
  CodedError,
  FILE_LIMITS,
  type ReplaceRequest,
  type ReplaceResponse,
  type SearchMatch,
  type SearchRequest,
  type SearchResponse,
} from '@nullspace/protocol/core';
import { fsError } from './fs-errors.js';
import { atomicWrite } from './transfer.js';
import { type WalkedFile, expression, readText, walkSelection } from './walk.js';

/**
 * Content search, line by line: every match of `pattern` (a regex or a literal) in the text files
 * of the selection, until `max_results`. A match does not span lines.
 */
export async function searchFiles(req: SearchRequest): Promise<SearchResponse> {
  const re = expression(req.pattern, req.regex, req.case_sensitive);
  const matches: SearchMatch[] = [];
  let filesScanned = 0;
  for await (const file of walkSelection(req)) {
    const content = await readText(file);
    if (!content) continue;
    filesScanned++;
    // Most files do not hold a literal at all: skip the line split. (A regex is only tried line by
    // line: on the whole text, `$` would not match before a `\r\n`.)
    re.lastIndex = 0;
    if (!req.regex && !re.test(content.text)) continue;
    const lines = content.text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] as string).replace(/\r$/, '');
      re.lastIndex = 0;
      for (let m = re.exec(line); m !== null; m = re.exec(line)) {
        if (matches.length >= req.max_results)
          return { matches, truncated: true, files_scanned: filesScanned };
        matches.push({
          path: file.path,
          line: i + 1,
          column: m.index + 1,
          text: line.slice(0, FILE_LIMITS.search.maxLineText),
        });
        if (m[0] === '') re.lastIndex++; // an empty match must not loop
      }
    }
  }
  return { matches, truncated: false, files_scanned: filesScanned };
}

async function* explicitFiles(paths: string[]): AsyncGenerator<WalkedFile> {
  for (const path of paths) {
    const st = await stat(path).catch((err: unknown) => {
      throw fsError(err, path);
    });
    if (!st.isFile())
      throw new CodedError('invalid_argument', `paths: ${path}: is not a regular file`, {
        field: 'paths',
        path,
      });
    yield { path, size: st.size };
  }
}

/**
 * Replaces every match in the chosen files, each file rewritten atomically (temporary file +
 * rename, permissions kept). Binary files, files over 10 MiB and files that are not valid UTF-8
 * are left alone, so no byte outside a match ever changes.
 */
export async function replaceInFiles(req: ReplaceRequest): Promise<ReplaceResponse> {
  const re = expression(req.pattern, req.regex, req.case_sensitive);
  const files: ReplaceResponse['files'] = [];
  let total = 0;
  const source = req.paths
    ? explicitFiles(req.paths)
    : walkSelection({ path: req.path ?? '/', include: req.include, exclude: req.exclude });
  for await (const file of source) {
    const content = await readText(file);
    if (!content) continue;
    re.lastIndex = 0;
    if (!re.test(content.text)) continue;
    // Text that does not survive a UTF-8 round trip would be changed outside the matches.
    if (!Buffer.from(content.text, 'utf8').equals(content.bytes)) continue;
    re.lastIndex = 0;
    const count = [...content.text.matchAll(re)].length;
    // With regex, String.prototype.replace expands `$1`, `$<name>`, `$&`; a literal goes in as is.
    const replaced = req.regex
      ? content.text.replace(re, req.replacement)
      : content.text.replace(re, () => req.replacement);
    if (count === 0 || replaced === content.text) continue;
    const bytes = Buffer.from(replaced, 'utf8');
    await atomicWrite(file.path, (write) => write(bytes));
    files.push({ path: file.path, replacements: count });
    total += count;
  }
  return { files, total_replacements: total, files_changed: files.length };
}
