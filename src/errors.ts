/**
 * Errors a user can act on. The CLI prints `message` (one line) and, when present, `fix`, and
 * exits with `exitCode` instead of showing a stack trace: a stack trace is for our bugs, not for
 * a missing file or a typo in an option.
 */
export class CttaError extends Error {
  /** What the user should do about it, e.g. "pass --data-dir DIR or run `apt-get install ...`". */
  readonly fix: string | undefined;
  /** 2 = usage / input error (bad option, bad file), 1 = the run itself failed. */
  readonly exitCode: number;

  constructor(message: string, options: { fix?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CttaError';
    this.fix = options.fix;
    this.exitCode = options.exitCode ?? 2;
  }

  /** The single line the CLI prints. */
  toLine(): string {
    return this.fix ? `${this.message} (fix: ${this.fix})` : this.message;
  }
}
