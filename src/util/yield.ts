/**
 * Gives timers and I/O a turn. Long tensor loops only await promises (microtasks), which starves
 * progress-bar timers and signal handlers; one setImmediate per batch costs microseconds.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
