/**
 * Reading a JSON file that may be anything (downloaded, shared, edited by hand) without letting
 * it hurt us or leak into a message:
 * - the size is checked before reading, so a huge file is refused unread instead of stalling the
 *   parser, and a path that is not a regular file (a folder; a FIFO or a device, whose read may
 *   block forever) is refused before it is opened;
 * - a syntax error is reported by line and column that our own scanner computes: JSON.parse's
 *   message quotes the text around the error (V8 11+), and the text must not reach a message.
 *   Values that do go into a message go through `quote` (escaped, one line, bounded).
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { CttaError } from '../errors.js';
import { describeFsError } from './output-dir.js';

/** How a reader checks one file and names it in messages. */
export interface JsonFileRules {
  /** The file as messages name it: as the user gave it, not as resolved. */
  shown: string;
  /** Files above this many bytes are refused unread. */
  maxBytes: number;
  /** What to tell the user when the file is too large (so not the kind of file expected). */
  tooLargeFix: string;
  /** What to tell the user when the path is a folder, a FIFO or a device. */
  notFileFix: string;
}

/**
 * The bytes of a JSON file, refused unread when it is not a regular file or above
 * `rules.maxBytes`. Synchronous: the files are small (bounded), and callers are both sync
 * (scenarios) and async (checkpoints).
 */
export function readJsonBytes(file: string, rules: JsonFileRules): Uint8Array {
  let s: Stats;
  try {
    s = statSync(file);
  } catch (err) {
    throw cannotRead(rules, err);
  }
  checkBeforeReading(s, rules);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw cannotRead(rules, err);
  }
  checkAfterReading(bytes, rules);
  return bytes;
}

/** The reason is the errno in words (no path beyond the one the caller shows, no contents). */
function cannotRead(rules: JsonFileRules, err: unknown): CttaError {
  return new CttaError(`${rules.shown} cannot be read: ${describeFsError(err)}`, { fix: 'check the path and its permissions' });
}

function tooLarge(rules: JsonFileRules): CttaError {
  return new CttaError(`${rules.shown} is larger than ${rules.maxBytes / 2 ** 20} MiB: refusing to read it`, { fix: rules.tooLargeFix });
}

function checkBeforeReading(s: Stats, rules: JsonFileRules): void {
  if (!s.isFile()) throw new CttaError(`${rules.shown} is not a regular file`, { fix: rules.notFileFix });
  if (s.size > rules.maxBytes) throw tooLarge(rules);
}

function checkAfterReading(bytes: Uint8Array, rules: JsonFileRules): void {
  if (bytes.byteLength > rules.maxBytes) throw tooLarge(rules); // it grew after the stat
}

/**
 * Parses JSON bytes (UTF-8; a leading BOM is dropped). Fails with one line that names the file
 * and where the syntax error is, never what the file holds:
 * `<shown> is not valid JSON (line L, column C)`.
 */
export function parseJsonBytes(bytes: Uint8Array, shown: string, fix: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new CttaError(`${shown} is not valid JSON (not UTF-8 text)`, { fix });
  }
  try {
    return JSON.parse(text);
  } catch {
    const at = jsonErrorLineColumn(text);
    throw new CttaError(`${shown} is not valid JSON${at ? ` (line ${at.line}, column ${at.column})` : ''}`, { fix });
  }
}

/** A place in a text, both counted from 1; the column counts UTF-16 code units. */
export interface LineColumn {
  line: number;
  column: number;
}

/** Where the first JSON syntax error in `text` is, or undefined (valid, or nested too deeply to scan). */
export function jsonErrorLineColumn(text: string): LineColumn | undefined {
  const at = jsonErrorOffset(text);
  if (at < 0) return undefined;
  const before = text.slice(0, at);
  return { line: before.split('\n').length, column: at - before.lastIndexOf('\n') };
}

/** Offset of the first JSON syntax error in `s`, or -1 (valid, or too deeply nested to scan). */
export function jsonErrorOffset(s: string): number {
  let i = 0;
  const fail = (): never => {
    throw new JsonSyntaxAt(i);
  };
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const number = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const string = () => {
    i++; // opening quote
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail();
      if (c === 0x5c) {
        const e = s[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) fail();
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail();
      } else i++;
    }
    fail();
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        if (s[i] !== '"') fail();
        string();
        ws();
        if (s[i] !== ':') fail();
        i++;
        value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === '}') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (s[i] === ',') i++;
        else if (s[i] === ']') {
          i++;
          return;
        } else fail();
      }
    }
    if (c === '"') return string();
    for (const word of ['true', 'false', 'null']) {
      if (s.startsWith(word, i)) {
        i += word.length;
        return;
      }
    }
    number.lastIndex = i;
    if (!number.exec(s)) fail();
    i = number.lastIndex;
  };
  try {
    value();
    ws();
    if (i < s.length) fail();
    return -1;
  } catch (err) {
    if (err instanceof JsonSyntaxAt) return err.offset;
    return -1; // stack overflow on absurd nesting: no position
  }
}

class JsonSyntaxAt {
  constructor(readonly offset: number) {}
}

/** A value from a file, quoted for a message: JSON-escaped (so one line) and at most 200 characters. */
export function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

/** `s` with its line breaks turned into spaces: a message is one line. */
export function oneLine(s: string): string {
  return s.replace(/[\r\n\u2028\u2029]+/g, ' ');
}

/** JSON with sorted keys, so the same content always hashes the same. */
/** A command-line value (`--set`, `--scenario-set`): JSON when it parses as JSON, else the text itself. */
export function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
