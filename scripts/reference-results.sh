#!/usr/bin/env bash
# Every number in results/ (and the README's reference tables) from one command:
#   npm run build && scripts/reference-results.sh
# Runs the reference sweeps into results/ (finished runs of the same identity are kept, so an
# interrupted call resumes; a run with other settings is refused, never mixed in), then writes
# the tables and plots. About a day on 2 cores: CoTTA (~80 min per seed of a 30,000-image
# stream on one core, 6 scenarios x 3 seeds) is most of it, then OnPro and AEF-OCL.
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

# Every shipped Fashion-MNIST scenario with every built-in method of its protocol (the coverage
# table of results/README.md): the test-time methods on the unlabelled corrupted streams, the
# online continual-learning methods on the incremental ones, Source on both.
tta=source,bn,tent,eata,sar,cotta,vida,lame,rotta,nhl
for scenario in fmnist-c-continual fmnist-c-gradual fmnist-c-mixed fmnist-c-imbalanced fmnist-c-dirichlet fmnist-c-dirichlet-sorted; do
  ctta run "$scenario" --methods "$tta" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
  show table results --scenario "$scenario" --methods "$tta" --out "results/$scenario.md"
  show table results --scenario "$scenario" --methods "$tta" --out "results/$scenario.csv"
  show plot results --scenario "$scenario" --methods "$tta" --kind domains --out "results/$scenario-domains.svg"
done
show plot results --scenario fmnist-c-continual --methods "$tta" --kind online --out results/fmnist-c-continual-online.svg
show plot results --scenario fmnist-c-continual --methods "$tta" --kind online --out results/fmnist-c-continual-online.png

# Online continual learning. On the from-scratch stream the replay methods run at three memory
# sizes (labelled variants; 200 is their default); every other method at its defaults.
replay=""
sets=()
for m in er onpro uer tame; do
  for size in 100 200 500; do
    replay="${replay:+$replay,}$m-m$size=$m"
    sets+=(--set "$m-m$size.memorySize=$size")
  done
done
for scenario in fmnist-class-incremental fmnist-base5-incremental fmnist-class-incremental-imbalanced fmnist-domain-incremental; do
  args=()
  case "$scenario" in
    fmnist-class-incremental) methods="source,acil,aef-ocl,ds-al,ear,$replay"; args=("${sets[@]}") ;;
    # The base-5 checkpoint predicts 5 classes: only the methods that fit a new head on its frozen
    # backbone can start from it (the others declare fullHead and refuse it).
    fmnist-base5-incremental | fmnist-class-incremental-imbalanced) methods=source,acil,aef-ocl,ds-al ;;
    *) methods=source,er,acil,aef-ocl,ds-al,onpro,uer,ear,tame ;;
  esac
  ctta run "$scenario" --methods "$methods" "${args[@]}" --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
  methods=$(echo "$methods" | sed 's/=[a-z]*//g') # the variants' labels
  show table results --scenario "$scenario" --methods "$methods" --out "results/$scenario.md"
  show table results --scenario "$scenario" --methods "$methods" --out "results/$scenario.csv"
  show plot results --scenario "$scenario" --methods "$methods" --kind matrix --out "results/$scenario-matrix.svg"
done
$sharded || node scripts/ear-auroc.mjs --out results/fmnist-ear-auroc.md
echo "results/ regenerated: compare with git diff, then update the README's numbers" >&2
