#!/usr/bin/env bash
# Every number in results/ (and the README's reference tables) from one command:
#   npm run build && scripts/reference-results.sh
# Runs the reference sweeps into results/ (finished runs of the same identity are kept, so an
# interrupted call resumes; a run with other settings is refused, never mixed in), then writes
# the tables and plots. About 3 h on 2 cores for the test-time methods (almost all of it CoTTA
# and ViDA), and several more for the online continual-learning ones (mostly OnPro).
# Extra arguments go to every `ctta run` (e.g. --shard 2/4: this machine's slice of each sweep);
# with --shard the tables and plots are left to the run after `ctta merge`.
set -euo pipefail
cd "$(dirname "$0")/.."
ctta() { node dist/cli/main.js "$@"; }
workers=${WORKERS:-2}
extra=("$@")
sharded=false
for a in "$@"; do [ "$a" = --shard ] && sharded=true; done
# Tables and plots: from the finished runs, so only when this machine has all of them.
show() { $sharded || ctta "$@"; }

continual=source,bn,tent,eata,sar,cotta,vida,lame,rotta,nhl
ctta run fmnist-c-continual --methods "$continual" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
show table results --scenario fmnist-c-continual --methods "$continual" --out results/fmnist-c-continual.md
show table results --scenario fmnist-c-continual --methods "$continual" --out results/fmnist-c-continual.csv
show plot results --scenario fmnist-c-continual --methods "$continual" --kind online --out results/fmnist-c-continual-online.svg
show plot results --scenario fmnist-c-continual --methods "$continual" --kind online --out results/fmnist-c-continual-online.png
show plot results --scenario fmnist-c-continual --methods "$continual" --kind domains --out results/fmnist-c-continual-domains.svg

# Label-correlated streams: Dirichlet (delta 0.1) and class-sorted (delta 0).
correlated=source,bn,tent,eata,sar,nhl,lame,rotta
for scenario in fmnist-c-dirichlet fmnist-c-dirichlet-sorted; do
  ctta run "$scenario" --methods "$correlated" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
  show table results --scenario "$scenario" --methods "$correlated" --out "results/$scenario.md"
  show plot results --scenario "$scenario" --methods "$correlated" --kind domains --out "results/$scenario-domains.svg"
done
# Online continual learning. Replay methods at three memory sizes (labelled variants), from
# scratch; the analytic family on the base5 checkpoint, balanced and long-tailed.
replay=""
sets=()
for m in er onpro uer tame; do
  for size in 100 200 500; do
    replay="${replay:+$replay,}$m-m$size=$m"
    sets+=(--set "$m-m$size.memorySize=$size")
  done
done
ctta run fmnist-class-incremental --methods "$replay" "${sets[@]}" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
variants=$(echo "$replay" | sed 's/=[a-z]*//g')
show table results --scenario fmnist-class-incremental --methods "$variants" --out results/fmnist-class-incremental.md
show table results --scenario fmnist-class-incremental --methods "$variants" --out results/fmnist-class-incremental.csv
show plot results --scenario fmnist-class-incremental --methods "$variants" --kind matrix --out results/fmnist-class-incremental-matrix.svg

analytic=acil,aef-ocl,ds-al
for scenario in fmnist-base5-incremental fmnist-class-incremental-imbalanced; do
  ctta run "$scenario" --methods "$analytic" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
  show table results --scenario "$scenario" --methods "$analytic" --out "results/$scenario.md"
  show table results --scenario "$scenario" --methods "$analytic" --out "results/$scenario.csv"
  show plot results --scenario "$scenario" --methods "$analytic" --kind matrix --out "results/$scenario-matrix.svg"
done
# Domain-incremental with labels (EAR's setting).
ctta run fmnist-domain-incremental --methods source,ear --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
show table results --scenario fmnist-domain-incremental --methods source,ear --out results/fmnist-domain-incremental.md
show plot results --scenario fmnist-domain-incremental --methods source,ear --kind matrix --out results/fmnist-domain-incremental-matrix.svg
$sharded || node scripts/ear-auroc.mjs --out results/fmnist-ear-auroc.md
echo "results/ regenerated: compare with git diff, then update the README's numbers" >&2
