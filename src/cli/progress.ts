/**
 * Progress bars on stderr (stdout stays clean for tables and --json). On a terminal the bar
 * redraws in place; in CI logs it prints a line every few seconds instead.
 *
 * Ctrl-C: the bars hide the terminal cursor, so an interrupt must stop them and show it again.
 * While a bar runs (or a command has called `onInterrupt`), SIGINT stops every bar, shows the
 * cursor, prints one line (the command's, e.g. how to resume) and exits with 130.
 */
import cliProgress from 'cli-progress';

/** Exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT_CODE = 130;
/** Shows the terminal cursor (progress bars hide it while they draw). */
export const SHOW_CURSOR = '\x1b[?25h';

/** Bars started and not yet stopped. */
const activeBars = new Set<cliProgress.SingleBar>();
/** Messages registered by onInterrupt, newest last: the newest is printed. */
const messages: { message: string }[] = [];
let listening = false;

/**
 * Prints `message` as one line ("ctta: <message>") when the user presses Ctrl-C, after stopping
 * the progress bars and showing the cursor, then exits with 130. Returns a disposer that removes
 * the message (call it when the long part of the command is over, e.g. in `finally`); while
 * several are registered, the newest one is printed.
 *
 *     const dispose = onInterrupt('interrupted: re-run the same command to resume (finished runs are kept)');
 *     try { await longWork(); } finally { dispose(); }
 */
export function onInterrupt(message: string): () => void {
  const entry = { message };
  messages.push(entry);
  listen();
  let disposed = false;
  return () => {
    if (disposed) return;
    disposed = true;
    const i = messages.indexOf(entry);
    if (i >= 0) messages.splice(i, 1);
    unlistenIfIdle();
  };
}

/**
 * Stops every running progress bar and shows the terminal cursor again (on a terminal). Safe to
 * call at any time, more than once.
 */
export function restoreTerminal(): void {
  for (const bar of [...activeBars]) {
    try {
      bar.stop();
    } catch {
      /* a broken stream: nothing more to restore */
    }
  }
  activeBars.clear();
  if (process.stderr.isTTY) {
    try {
      process.stderr.write(SHOW_CURSOR);
    } catch {
      /* ignore */
    }
  }
}

function handleInterrupt(): void {
  restoreTerminal();
  const message = messages.at(-1)?.message ?? 'interrupted';
  try {
    process.stderr.write(`ctta: ${message}\n`);
  } catch {
    /* ignore */
  }
  process.exit(INTERRUPTED_EXIT_CODE);
}

function listen(): void {
  if (listening) return;
  listening = true;
  process.on('SIGINT', handleInterrupt);
}

function unlistenIfIdle(): void {
  if (!listening || messages.length > 0 || activeBars.size > 0) return;
  listening = false;
  process.off('SIGINT', handleInterrupt);
}

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(total: number, format: string, options: { quiet?: boolean; barSize?: number } = {}): Progress {
  if (options.quiet) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      format,
      barsize: options.barSize ?? 40,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      noTTYOutput: !process.stderr.isTTY,
      notTTYSchedule: 20_000,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let stopped = false;
  return {
    update(done, fields = {}) {
      if (stopped) return;
      if (!started) {
        bar.start(total, 0, fields);
        started = true;
        activeBars.add(bar);
        listen();
      }
      bar.update(done, fields);
    },
    stop() {
      if (!started || stopped) return;
      stopped = true;
      activeBars.delete(bar);
      bar.stop();
      unlistenIfIdle();
    },
  };
}

/** The widest text a run's bar shows after the bar itself (` 100% err 100.0% 99999/s ETA 59m59s all 99h59m`). */
export const RUN_BAR_TAIL = 46;
const MIN_BAR = 6;

/**
 * A sweep run's progress line, `run k/n <name> [bar] 45% err 23.1% 1450/s ETA 0m12s all 3m10s`,
 * sized to fit 80 columns: the name is cut to what fits beside a bar of at least MIN_BAR.
 * Fields: err, ips, eta_t, sweep (" all <sweep ETA>" or "").
 */
export function runBarFormat(k: number, n: number, name: string): { format: string; barSize: number } {
  const counter = `run ${k}/${n} `;
  // 79 columns (a terminal wraps a line that fills the 80th) = counter + name + " [" + bar + "]" + tail.
  const room = 79 - counter.length - 3 - RUN_BAR_TAIL - MIN_BAR;
  const cut = name.length > room ? `${name.slice(0, Math.max(1, room - 1))}~` : name;
  const prefix = counter + cut;
  const barSize = Math.max(MIN_BAR, 79 - prefix.length - 3 - RUN_BAR_TAIL);
  return { format: `${prefix} [{bar}] {percentage}% err {err}% {ips}/s ETA {eta_t}{sweep}`, barSize };
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}
