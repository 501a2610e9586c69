// The PyTorch peer (bench/peers/peer.py) as a long-lived child process speaking one JSON line per
// request and per answer. Missing Python or torch is not an error: `startPeer` then returns
// { missing: reason } and the harness measures ctta alone.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Debian's interpreter, where apt's python3-torch lives; CTTA_BENCH_PYTHON names another (a venv's). */
export const PYTHON = process.env.CTTA_BENCH_PYTHON || '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../peers/peer.py', import.meta.url));

export class Peer {
  constructor(child) {
    this.child = child;
    this.pending = [];
    this.stderr = '';
    this.closed = false;
    child.stdin.on('error', () => undefined); // a dead peer is reported by 'exit'
    child.stderr.on('data', (d) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const next = this.pending.shift();
      if (!next) return;
      let res;
      try {
        res = JSON.parse(line);
      } catch {
        next.reject(new Error(`peer said something that is not JSON: ${line.slice(0, 200)}`));
        return;
      }
      if (res.ok) next.resolve(res);
      else next.reject(new Error(`peer: ${res.error}`));
    });
    child.on('exit', (code, signal) => {
      this.closed = true;
      const why = new Error(`peer exited (${signal ?? code}): ${this.lastError()}`);
      for (const p of this.pending.splice(0)) p.reject(why);
    });
    child.on('error', (err) => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p.reject(err);
    });
  }

  lastError() {
    const lines = this.stderr.trim().split('\n').filter(Boolean);
    return lines[lines.length - 1] ?? 'no message';
  }

  /** One request; a peer silent for `timeoutMs` is killed (its pending requests fail). */
  request(cmd, fields = {}, timeoutMs = 600_000) {
    if (this.closed) return Promise.reject(new Error(`peer is not running: ${this.lastError()}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stderr += `\nno answer to ${cmd} within ${timeoutMs / 1000} s`;
        this.child.kill();
      }, timeoutMs);
      const done = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      this.pending.push({ resolve: done(resolve), reject: done(reject) });
      this.child.stdin.write(`${JSON.stringify({ cmd, ...fields })}\n`);
    });
  }

  async close() {
    if (this.closed) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.stdin.write('{"cmd":"quit"}\n');
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Starts the peer and says hello; { peer, hello } or { missing: reason }. */
export async function startPeer() {
  if (!existsSync(PYTHON)) return { missing: `${PYTHON} not found` };
  const child = spawn(PYTHON, ['-B', SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  const peer = new Peer(child);
  try {
    const hello = await peer.request('hello');
    return { peer, hello };
  } catch (err) {
    const reason = /No module named '(torch|numpy)'/.exec(String(err.message) + peer.stderr);
    await peer.close().catch(() => undefined);
    return { missing: reason ? `${PYTHON} has no ${reason[1]} (apt-get install python3-torch)` : err.message };
  }
}
