#!/usr/bin/env bash
# Every number in results/ (and the README's reference tables) from one command:
#   npm run build && scripts/reference-results.sh
# Runs the reference sweeps into results/ (finished runs of the same identity are kept, so an
# interrupted call resumes; a run with other settings is refused, never mixed in), then writes
# the tables and plots. About 3 h on 2 cores, almost all of it CoTTA and ViDA.
set -euo pipefail
cd "$(dirname "$0")/.."
ctta() { node dist/cli/main.js "$@"; }
workers=${WORKERS:-2}

continual=source,bn,tent,eata,sar,cotta,vida,lame
ctta run fmnist-c-continual --methods "$continual" --out results --workers "$workers" --quiet >/dev/null
ctta table results --scenario fmnist-c-continual --methods "$continual" --out results/fmnist-c-continual.md
ctta table results --scenario fmnist-c-continual --methods "$continual" --out results/fmnist-c-continual.csv
ctta plot results --scenario fmnist-c-continual --methods "$continual" --kind online --out results/fmnist-c-continual-online.svg
ctta plot results --scenario fmnist-c-continual --methods "$continual" --kind online --out results/fmnist-c-continual-online.png
ctta plot results --scenario fmnist-c-continual --methods "$continual" --kind domains --out results/fmnist-c-continual-domains.svg

sorted=source,bn,tent,lame
ctta run fmnist-c-dirichlet-sorted --methods "$sorted" --seeds 0 --out results --workers "$workers" --quiet >/dev/null
ctta table results --scenario fmnist-c-dirichlet-sorted --methods "$sorted" --out results/fmnist-c-dirichlet-sorted.md
ctta plot results --scenario fmnist-c-dirichlet-sorted --methods "$sorted" --kind domains --out results/fmnist-c-dirichlet-sorted-domains.svg
echo "results/ regenerated: compare with git diff, then update the README's numbers" >&2
