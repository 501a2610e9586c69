/**
 * Writes one run's JSON Lines file so that a crash never leaves a file that looks finished:
 * records are appended to `<file>.partial` as the run goes, and the summary is appended and the
 * file renamed to `<file>` only at the end. Resuming means: finished file -> skip; anything
 * else -> start that run again.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BatchRecord, RunHeader, RunSummary } from './records.js';

export function runFile(outDir: string, scenario: string, method: string, seed: number): string {
  return join(outDir, scenario, method, `seed-${seed}.jsonl`);
}

/** True when the run's final file exists and ends with a summary record. */
export function isFinished(file: string): boolean {
  if (!existsSync(file)) return false;
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
  try {
    return (JSON.parse(lines[lines.length - 1]!) as { type?: string }).type === 'summary';
  } catch {
    return false;
  }
}

export class ResultWriter {
  private fd: number;
  private readonly partial: string;

  constructor(readonly file: string, header: RunHeader) {
    mkdirSync(dirname(file), { recursive: true });
    this.partial = `${file}.partial`;
    this.fd = openSync(this.partial, 'w');
    this.write(header);
  }

  batch(record: BatchRecord): void {
    this.write(record);
  }

  finish(summary: RunSummary): void {
    this.write(summary);
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

  private write(record: object): void {
    writeSync(this.fd, JSON.stringify(record) + '\n');
  }
}
