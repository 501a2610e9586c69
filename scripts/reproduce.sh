#!/usr/bin/env bash
# `npm run reproduce`: every run of results/ (reference sweeps, then the sensitivity sweeps),
# then the reproduction report results/README.md. Finished runs are kept, so it resumes.
# Spread over machines: `npm run reproduce -- --shard i/n` on machine i runs its slice of every
# sweep (no tables); then `npx ctta merge m1/results m2/results ... --out results` and
# `npm run reproduce` once more writes the tables, plots and report from the merged runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/reference-results.sh "$@"
scripts/sensitivity.sh "$@"
for a in "$@"; do [ "$a" = --shard ] && exit 0; done
node scripts/reproduction-report.mjs
