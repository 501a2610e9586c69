/**
 * Writes one run's JSON Lines file so that a crash never leaves a file that looks finished:
 * records are appended to `<file>.partial` as the run goes, and the summary is appended and the
 * file renamed to `<file>` only at the end. Resuming means: finished file -> skip; anything
 * else -> start that run again. Every record is checked against the format's schemas first (a NaN
 * would become null in JSON and make the file unreadable), so a bad record throws before any of
 * it is written, and a bad summary leaves no finished file.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { z } from 'zod';
import { CttaError } from '../errors.js';
import { batchRecordSchema, describeIssue, runHeaderSchema, runSummarySchema, type BatchRecord, type RunHeader, type RunSummary } from './records.js';

export function runFile(outDir: string, scenario: string, method: string, seed: number): string {
  return join(outDir, scenario, method, `seed-${seed}.jsonl`);
}

/** True when the run's final file exists and ends with a summary record. */
export function isFinished(file: string): boolean {
  return finishedRun(file) !== undefined;
}

/**
 * A finished run file's header, read with the same single read that tells it is finished:
 * undefined when the file is missing or does not end with a summary; `header` undefined when
 * it is finished but its first line is not a valid header.
 */
export function finishedRun(file: string): { header: RunHeader | undefined } | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  const record = (line: string | undefined): unknown => {
    try {
      return JSON.parse(line ?? '');
    } catch {
      return undefined;
    }
  };
  if ((record(lines[lines.length - 1]) as { type?: string } | undefined)?.type !== 'summary') return undefined;
  const parsed = runHeaderSchema.safeParse(record(lines[0]));
  return { header: parsed.success ? (parsed.data as RunHeader) : undefined };
}

export class ResultWriter {
  private fd: number;
  private readonly partial: string;

  constructor(readonly file: string, header: RunHeader) {
    const line = this.line(runHeaderSchema, header, 'header');
    mkdirSync(dirname(file), { recursive: true });
    this.partial = `${file}.partial`;
    this.fd = openSync(this.partial, 'w');
    writeSync(this.fd, line);
  }

  batch(record: BatchRecord): void {
    writeSync(this.fd, this.line(batchRecordSchema, record, `batch ${record.i}`));
  }

  finish(summary: RunSummary): void {
    writeSync(this.fd, this.line(runSummarySchema, summary, 'summary'));
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = -1;
    renameSync(this.partial, this.file);
  }

  /** Gives up on the run: removes the partial file. */
  abort(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    rmSync(this.partial, { force: true });
  }

  /** The record's JSON line, after checking it against its schema. */
  private line(schema: z.ZodType, record: object, what: string): string {
    const r = schema.safeParse(record);
    if (!r.success) {
      // exitCode 1: the runner or a method produced it, not the user's input.
      throw new CttaError(`${this.file}: the ${what} record does not match the result format: ${describeIssue(r.error)}`, {
        fix: 'a bug in the runner or in the method that reported the value (e.g. a NaN diagnostic); nothing of the record was written',
        exitCode: 1,
      });
    }
    return JSON.stringify(record) + '\n';
  }
}
