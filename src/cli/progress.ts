/**
 * Progress bars on stderr (stdout stays clean for tables and --json). On a terminal the bar
 * redraws in place; in CI logs it prints a line every few seconds instead.
 */
import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(total: number, format: string, options: { quiet?: boolean } = {}): Progress {
  if (options.quiet) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      noTTYOutput: !process.stderr.isTTY,
      notTTYSchedule: 20_000,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, fields = {}) {
      if (!started) {
        bar.start(total, 0, fields);
        started = true;
      }
      bar.update(done, fields);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}
