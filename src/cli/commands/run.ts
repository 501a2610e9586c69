import { Command } from 'commander';
import { setBackend } from '../../backend/index.js';
import { CttaError } from '../../errors.js';
import { isFinished, runFile } from '../../eval/result-writer.js';
import { runSweep, parseShard, planSweep, shardJobs, type SweepEvent, type SweepJob } from '../../eval/sweep.js';
import { createMethod, loadPlugin } from '../../methods/index.js';
import { readResults } from '../../report/results.js';
import { formatMarkdown, summarize } from '../../report/table.js';
import { loadScenario, SCENARIO_FIELDS, type Scenario } from '../../streams/scenario.js';
import { jsonOrString } from '../../util/json-file.js';
import { choiceOption, collect, intOption } from '../parse.js';
import { formatSeconds, onInterrupt, progressBar, runBarFormat, type Progress } from '../progress.js';
import { ensureOutputDir } from '../../util/output-dir.js';

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** "bn.alpha=0.5" -> {bn: {alpha: 0.5}} (values parsed as JSON when they are JSON). */
function parseSet(entries: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const e of entries) {
    const m = /^([A-Za-z][\w-]*)\.([A-Za-z_]\w*)=(.*)$/.exec(e);
    if (!m) {
      const field = /^([A-Za-z]\w*)(?:\.[\w.]*)?=/.exec(e)?.[1];
      if (field && SCENARIO_FIELDS.includes(field)) {
        throw new CttaError(`--set "${e}" sets a scenario field, not a method option`, { fix: `use --scenario-set ${e}` });
      }
      throw new CttaError(`--set "${e}" is not method.option=value`, { fix: 'e.g. --set bn.alpha=0.5 (the method or its label, a dot, the option, =, the value)' });
    }
    (out[m[1]!] ??= {})[m[2]!] = jsonOrString(m[3]!);
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
    .option('--scenario-set <field=value>', 'override a scenario field, repeatable (e.g. batchSize=16, ordering.params.samplesPerDomain=500); enters the scenario hash', collect, [])
    .option('--limit <n>', 'run only the first n batches of each stream (a quick check; same as --scenario-set limit=n)', intOption('--limit', 1))
    .option('--dry-run', 'print the resolved scenarios and the grid of runs, and run nothing')
    .option('--workers <n>', 'parallel worker threads, one backend each', intOption('--workers', 1), 1)
    .option('--threads <n>', 'wasm threads for one run (threaded build; for a sweep, --workers scales better)', intOption('--threads', 1), 1)
    .option('--shard <i/n>', 'run only the i-th of n deterministic slices of the grid (then ctta merge)')
    .option('--backend <name>', 'auto | tensorflow-gpu | tensorflow | wasm | cpu', 'auto')
    .option('--plugin <file>', 'a module (.js, .ts) that registers methods, repeatable; see examples/', collect, [])
    .option('--data-dir <dir>', 'where the dataset files are')
    .option('--quiet', 'no progress output')
    .option('--table <kind>', 'the table printed at the end: summary (fits a terminal) | full (error per domain or per task)', choiceOption('--table', ['summary', 'full'] as const), 'summary')
    .option('--json', 'print the final table rows as JSON')
    .option('--verbose', 'print the stack trace of a failed run')
    .addHelpText('after', `
Examples:
  ctta run fmnist-c-continual --methods source,bn
  ctta run fmnist-c-continual --methods bn --set bn.alpha=0.1 --seeds 0 --out results/alpha
  # scenario fields from the command line (a new scenario hash: use its own --out or name)
  ctta run fmnist-c-continual --methods bn,tent --scenario-set batchSize=16 --scenario-set name=fmnist-c-bs16
  ctta run fmnist-c-continual --methods tent --limit 5 --out /tmp/quick   # first 5 batches
  ctta run fmnist-c-continual --seeds 0,1,2 --dry-run                      # what would run
  # two variants of one method side by side: label=method, options set by label
  ctta run fmnist-c-dirichlet-sorted --methods source,lame,knn1=lame --set knn1.affinity=knn --set knn1.k=1
  ctta run fmnist-c-continual fmnist-c-dirichlet --workers 2
  ctta run fmnist-c-continual --methods tent --threads 2   # one run on 2 cores (wasm)
  # online continual learning (labels after each prediction): buffer sizes as labelled variants
  ctta run fmnist-class-incremental --methods er-m100=er,er-m500=er --set er-m100.memorySize=100 --set er-m500.memorySize=500
  ctta run fmnist-base5-incremental --methods acil,aef-ocl,ds-al
  ctta run fmnist-c-continual --shard 1/2 --out part1     # on machine 1; --shard 2/2 on machine 2
  ctta merge part1 part2 --out results && ctta table results
  ctta run fmnist-c-continual --plugin examples/pseudo-label.js --methods source,pseudo-label

Killing a sweep loses only the runs in progress: run the same command again to finish it.
A finished run is reused only if it is the same run (scenario, effective options, model, seed);
one with other settings is refused: write to another --out or give the variant a label.
Two sweeps on one --out share the work: each skips the runs the other is computing.`)
    .action(async (names: string[], o) => {
      for (const p of o.plugin as string[]) await loadPlugin(p);
      const overrides: string[] = [...o.scenarioSet, ...(o.limit !== undefined ? [`limit=${o.limit}`] : [])];
      const scenarios = names.map((n) => loadScenario(n, overrides));
      const methodOptions = parseSet(o.set);
      let jobs = planSweep(scenarios, o.methods, o.seeds, methodOptions, overrides);
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
      const grid = jobs.length;
      if (o.shard) {
        const shard = parseShard(o.shard);
        jobs = shardJobs(jobs, shard);
        if (jobs.length === 0) {
          // Slurm/Kubernetes arrays may be wider than a grid: an empty slice is not a failure.
          if (!o.quiet) process.stderr.write(`nothing to do in this shard: shard ${o.shard} of a ${grid}-run grid is empty\n`);
          return;
        }
      }
      if (o.dryRun) {
        printDryRun(scenarios, jobs, o.out, grid);
        return;
      }
      if (o.threads > 1 && o.workers > 1) {
        throw new CttaError(`--threads ${o.threads} with --workers ${o.workers}: choose one`, { fix: '--workers N runs N runs at once, one core each (best for sweeps); --threads N gives one run N cores' });
      }
      ensureOutputDir(o.out);
      const backend = await setBackend(o.backend, { threads: o.threads });
      const quiet = o.quiet || o.json;
      let bar: Progress | undefined;
      // The first batch of the current run (time, index): its ETA is measured from there, so the
      // set-up (model, stream, EATA's Fisher pass) does not inflate it.
      let firstBatch: { at: number; batch: number } | undefined;
      const started = Date.now();
      const warned = new Set<string>();
      const say = (line: string) => {
        bar?.stop(); // a line printed under a live bar would be overwritten
        bar = undefined;
        process.stderr.write(`${line}\n`);
      };
      // Progress: "run k/n" over the runs this sweep computes (not the skipped ones), a bar that
      // fits 80 columns, and a sweep ETA from the runs finished so far.
      const oneScenario = scenarios.length === 1;
      let skipped = 0;
      let begun = 0;
      let finished = 0;
      const toRun = () => jobs.length - skipped;
      /** The sweep's remaining time from the runs finished so far; undefined before the first. */
      const sweepEta = (): string | undefined => {
        if (finished === 0) return undefined;
        const perRun = (Date.now() - started) / 1000 / finished;
        return formatSeconds((perRun * (toRun() - finished)) / o.workers);
      };
      const onEvent = (e: SweepEvent) => {
        const label = `${e.job.scenario} ${e.job.label} seed ${e.job.seed}`;
        const short = `${oneScenario ? '' : `${e.job.scenario} `}${e.job.label} s${e.job.seed}`;
        if (e.type === 'failed') return say(`failed ${label}: ${e.error.toLine()}`);
        if (e.type === 'warning') {
          if (!warned.has(e.text)) say(`warning: ${e.text}`);
          warned.add(e.text);
          return;
        }
        if (e.type === 'skip' || e.type === 'busy') skipped++;
        if (e.type === 'start') begun++;
        if (e.type === 'done') finished++;
        if (quiet) return;
        if (e.type === 'skip') return say(`skip ${label} (finished: ${e.file})`);
        if (e.type === 'busy') return say(`skip ${label} (being run by ${e.holder})`);
        // With several workers, k of "run k/n" is not this job's: name it by its label.
        if (e.type === 'status') return say(o.workers > 1 ? `${label}: ${e.text} [worker ${e.worker}]` : `run ${begun}/${toRun()} ${label}: ${e.text}`);
        if (o.workers > 1) {
          if (e.type === 'start') say(`run ${begun}/${toRun()} ${label}: started [worker ${e.worker}]`);
          if (e.type === 'done') {
            const eta = sweepEta();
            say(`run ${finished}/${toRun()} done ${label}: mean error ${(e.summary.meanError * 100).toFixed(1)}%, ${e.summary.imagesPerSecond.toFixed(0)} img/s [worker ${e.worker}]${eta ? `, sweep ETA ${eta}` : ''}`);
          }
          return;
        }
        if (e.type === 'start') {
          firstBatch = undefined;
          // Until the first batch (model, stream, a method's warm-up such as EATA's Fisher pass)
          // the bar has nothing to show: say what is happening.
          say(`run ${begun}/${toRun()} ${label}: setting up`);
        }
        if (e.type === 'progress') {
          // Made at the first batch, after any status lines of the set-up (a line printed under
          // a live bar would be overwritten, so say() stops it).
          if (!bar) {
            const { format, barSize } = runBarFormat(begun, toRun(), short);
            bar = progressBar(1, format, { quiet, barSize });
          }
          const p = e.progress;
          firstBatch ??= { at: Date.now(), batch: p.batch };
          // Wall-clock time per batch since the first one (it includes reading and corrupting the
          // stream); nothing to measure until a second batch.
          const done = p.batch - firstBatch.batch;
          const left = done > 0 ? formatSeconds(((Date.now() - firstBatch.at) / 1000 / done) * (p.batches - p.batch)) : '-';
          const eta = sweepEta();
          bar?.update(p.batch / p.batches, { err: (p.error * 100).toFixed(1), ips: p.imagesPerSecond.toFixed(0), eta_t: left, sweep: eta ? ` all ${eta}` : '' });
        }
        if (e.type === 'done') {
          bar?.stop();
          bar = undefined;
        }
      };
      const stopInterrupt = onInterrupt('interrupted: re-run the same command to resume (finished runs are kept)');
      let report;
      try {
        report = await runSweep(jobs, { out: o.out, workers: o.workers, dataDir: o.dataDir, backend: backend.name, plugins: o.plugin, onEvent });
      } finally {
        bar?.stop();
        stopInterrupt();
      }
      // Rows in --methods order; the full table is one `ctta table` away.
      const prefer = [...new Set(jobs.map((j) => j.label))];
      const layout = o.table === 'full' || o.json ? 'auto' : 'summary';
      const rows = summarize(await readResults(o.out), { prefer, layout }).filter((r) => scenarios.some((s) => s.name === r.scenario));
      if (o.json) console.log(JSON.stringify(rows, null, 2));
      else {
        if (!o.quiet) {
          const parts = [`${report.ran} run(s) done`, `${report.skipped} already finished`];
          if (report.busy > 0) parts.push(`${report.busy} left to another process (re-run afterwards to include them)`);
          if (report.failed.length > 0) parts.push(`${report.failed.length} failed`);
          process.stderr.write(`${parts.join(', ')}, in ${formatSeconds((Date.now() - started) / 1000)} on ${backend.name}\n`);
        }
        console.log(formatMarkdown(rows));
        if (layout === 'summary' && !o.quiet) {
          for (const s of scenarios) process.stderr.write(`per-${s.heldOut ? 'task' : 'domain'} table: ctta table ${o.out} --scenario ${s.name}\n`);
        }
      }
      if (report.failed.length > 0) {
        const first = report.failed[0]!;
        throw new CttaError(`${report.failed.length} of ${jobs.length} run(s) failed, first: ${first.error.message}`, {
          fix: 'see the "failed" lines above; the table shows the runs that finished; --verbose (or CTTA_DEBUG=1) prints stack traces',
          exitCode: Math.max(...report.failed.map((f) => f.error.exitCode)),
          cause: first.error.cause,
        });
      }
    });
}

/** `--dry-run`: the scenarios as they will run (overrides applied) and one line per run. */
function printDryRun(scenarios: Scenario[], jobs: SweepJob[], out: string, grid: number): void {
  for (const s of scenarios) {
    // Methods and seeds are the grid's (below); the domains fit on one line.
    const { file, hash, domains, methods: _m, seeds: _s, description: _d, ...fields } = s;
    console.log(`scenario ${s.name} (${file}, hash ${hash.slice(0, 12)}):`);
    console.log(`  domains: ${domains.map((d) => d.name ?? `${d.corruption}${d.severity !== undefined ? `-${d.severity}` : ''}`).join(', ')}`);
    for (const [k, v] of Object.entries(fields)) console.log(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  console.log(`${jobs.length} run(s)${jobs.length < grid ? ` (this shard of a ${grid}-run grid)` : ''}:`);
  for (const j of jobs) {
    const options = Object.keys(j.methodOptions).length > 0 ? ` ${JSON.stringify(j.methodOptions)}` : '';
    const file = runFile(out, j.scenario, j.label, j.seed);
    const state = isFinished(file) ? ' (finished: would be reused if it is the same run)' : '';
    console.log(`  ${j.scenario} ${j.label}${j.label !== j.method ? `=${j.method}` : ''} seed ${j.seed}${options} -> ${file}${state}`);
  }
}
