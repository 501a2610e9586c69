import { Command, InvalidArgumentError } from 'commander';
import { setBackend } from '../../backend/index.js';
import { CttaError } from '../../errors.js';
import { runSweep, parseShard, planSweep, shardJobs, type SweepEvent } from '../../eval/sweep.js';
import { createMethod, loadPlugin } from '../../methods/index.js';
import { readResults } from '../../report/results.js';
import { formatMarkdown, summarize } from '../../report/table.js';
import { loadScenario } from '../../streams/scenario.js';
import { intOption } from '../parse.js';
import { formatSeconds, progressBar, type Progress } from '../progress.js';

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);
const collect = (v: string, prev: string[]) => [...prev, v];

/** "bn.alpha=0.5" -> {bn: {alpha: 0.5}} (values parsed as JSON when they are JSON). */
function parseSet(entries: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const e of entries) {
    const m = /^([A-Za-z][\w-]*)\.([A-Za-z_]\w*)=(.*)$/.exec(e);
    if (!m) throw new InvalidArgumentError(`--set "${e}" is not method.option=value (e.g. --set bn.alpha=0.5)`);
    let value: unknown = m[3];
    try {
      value = JSON.parse(m[3]!);
    } catch {
      /* a plain string */
    }
    (out[m[1]!] ??= {})[m[2]!] = value;
  }
  return out;
}

export function runCommand(): Command {
  return new Command('run')
    .description('run scenarios x methods x seeds prequentially and write results (finished runs are skipped)')
    .argument('<scenario...>', 'scenario files or shipped names (ctta list scenarios)')
    .option('--methods <list>', 'comma-separated methods; label=method names a variant (default: each scenario\'s "methods")', list)
    .option('--seeds <list>', 'comma-separated seeds (default: each scenario\'s "seeds")', (v) => list(v).map((s) => intOption('--seeds')(s)))
    .option('--out <dir>', 'results directory (results/ holds the published reference results)', 'runs')
    .option('--set <method.option=value>', 'method (or variant label) option, repeatable (e.g. --set bn.alpha=0.5)', collect, [])
    .option('--workers <n>', 'parallel worker threads, one backend each', intOption('--workers', 1), 1)
    .option('--shard <i/n>', 'run only the i-th of n deterministic slices of the grid (then ctta merge)')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--plugin <file>', 'JavaScript module that registers methods, repeatable', collect, [])
    .option('--data-dir <dir>', 'where the dataset files are')
    .option('--quiet', 'no progress output')
    .option('--json', 'print the final table rows as JSON')
    .addHelpText('after', `
Examples:
  ctta run fmnist-c-continual --methods source,bn
  ctta run fmnist-c-continual --methods bn --set bn.alpha=0.1 --seeds 0 --out results/alpha
  # two variants of one method side by side: label=method, options set by label
  ctta run fmnist-c-dirichlet-sorted --methods source,lame,knn1=lame --set knn1.affinity=knn --set knn1.k=1
  ctta run fmnist-c-continual fmnist-c-dirichlet --workers 2
  ctta run fmnist-c-continual --shard 1/2 --out part1     # on machine 1; --shard 2/2 on machine 2
  ctta merge part1 part2 --out results && ctta table results
  ctta run fmnist-c-continual --plugin examples/my-method.js --methods my-method

Killing a sweep loses only the runs in progress: run the same command again to finish it.`)
    .action(async (names: string[], o) => {
      for (const p of o.plugin as string[]) await loadPlugin(p);
      const scenarios = names.map((n) => loadScenario(n));
      const methodOptions = parseSet(o.set);
      let jobs = planSweep(scenarios, o.methods, o.seeds, methodOptions);
      // Unknown names and bad options fail before any work starts.
      const checked = new Set<string>();
      for (const j of jobs) {
        if (checked.has(j.label)) continue;
        checked.add(j.label);
        createMethod(j.method, j.methodOptions).dispose();
      }
      const unused = Object.keys(methodOptions).filter((l) => !checked.has(l));
      if (unused.length > 0) {
        throw new CttaError(`--set names "${unused[0]}", which is not among the methods run (${[...checked].join(', ')})`, { fix: 'use the label given in --methods (label=method) or the method name' });
      }
      if (o.shard) jobs = shardJobs(jobs, parseShard(o.shard));
      const backend = await setBackend(o.backend);
      const quiet = o.quiet || o.json;
      let bar: Progress | undefined;
      let runStarted = Date.now();
      const started = Date.now();
      const onEvent = (e: SweepEvent) => {
        const label = `${e.job.scenario} ${e.job.label} seed ${e.job.seed}`;
        if (e.type === 'skip' && !quiet) process.stderr.write(`skip ${label} (finished: ${e.file})\n`);
        if (o.workers > 1) {
          if (e.type === 'done' && !quiet) process.stderr.write(`done ${label}: mean error ${(e.summary.meanError * 100).toFixed(1)}%, ${e.summary.imagesPerSecond.toFixed(0)} img/s [worker ${e.worker}]\n`);
          return;
        }
        if (e.type === 'start') {
          runStarted = Date.now();
          bar = progressBar(1, `${label} [{bar}] {percentage}% | err {err}% | {ips} img/s | ETA {eta_t}`, { quiet });
        }
        if (e.type === 'progress') {
          const p = e.progress;
          // ETA from wall-clock time: it includes loading and corrupting the stream.
          const elapsed = (Date.now() - runStarted) / 1000;
          bar?.update(p.batch / p.batches, { err: (p.error * 100).toFixed(1), ips: p.imagesPerSecond.toFixed(0), eta_t: formatSeconds((elapsed * (p.batches - p.batch)) / Math.max(p.batch, 1)) });
        }
        if (e.type === 'done') bar?.stop();
      };
      const ran = await runSweep(jobs, { out: o.out, workers: o.workers, dataDir: o.dataDir, backend: backend.name, plugins: o.plugin, onEvent });
      const rows = summarize(await readResults(o.out)).filter((r) => scenarios.some((s) => s.name === r.scenario));
      if (o.json) {
        console.log(JSON.stringify(rows, null, 2));
        return;
      }
      if (!o.quiet) process.stderr.write(`${ran} run(s) done, ${jobs.length - ran} already finished, in ${formatSeconds((Date.now() - started) / 1000)} on ${backend.name}\n`);
      console.log(formatMarkdown(rows));
    });
}
