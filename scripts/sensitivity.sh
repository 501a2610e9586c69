#!/usr/bin/env bash
# The sensitivity runs of the reproduction report (results/README.md): batch size and learning
# rate, the settings users most often get wrong. On fmnist-c-continual cut to 500 images per
# corruption (7,500 images), through --scenario-set, so each setting is its own scenario name
# (and hash) and never mixes with the main runs. Also ACIL at three batch sizes (its claim: the
# analytic classifier does not depend on the batch size). Resumable like every ctta sweep.
#   npm run build && scripts/sensitivity.sh [--shard i/n]
set -euo pipefail
cd "$(dirname "$0")/.."
ctta() { node dist/cli/main.js "$@"; }
workers=${WORKERS:-2}
extra=("$@")

short=(--scenario-set ordering.params.samplesPerDomain=500)
for bs in 1 16 64 200; do
  ctta run fmnist-c-continual "${short[@]}" --scenario-set batchSize=$bs --scenario-set name=fmnist-c-continual-500-bs$bs \
    --methods source,bn,tent,lame,lame-knn=lame,rotta --set lame-knn.affinity=knn --seeds 0,1,2 \
    --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
done
# Learning rates at batch 64 (the default 1e-3 is the bs64 scenario's tent / cotta run).
ctta run fmnist-c-continual "${short[@]}" --scenario-set batchSize=64 --scenario-set name=fmnist-c-continual-500-bs64 \
  --methods tent-lr1e-4=tent,tent-lr1e-2=tent --set tent-lr1e-4.lr=0.0001 --set tent-lr1e-2.lr=0.01 --seeds 0,1,2 \
  --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
# CoTTA is ~60x slower than Source: one seed per learning rate.
ctta run fmnist-c-continual "${short[@]}" --scenario-set batchSize=64 --scenario-set name=fmnist-c-continual-500-bs64 \
  --methods cotta,cotta-lr1e-4=cotta,cotta-lr1e-2=cotta --set cotta-lr1e-4.lr=0.0001 --set cotta-lr1e-2.lr=0.01 --seeds 0 \
  --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
# The analytic classifier at three batch sizes (10 is the scenario's own).
for bs in 16 200; do
  ctta run fmnist-base5-incremental --scenario-set batchSize=$bs --scenario-set name=fmnist-base5-incremental-bs$bs \
    --methods acil --seeds 0,1,2 --out results --workers "$workers" --quiet "${extra[@]}" >/dev/null
done
