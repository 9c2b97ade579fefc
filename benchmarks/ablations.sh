#!/usr/bin/env bash
# The ablation rows of docs/quality.md: each a benchmarks/quality.py run at the demo budget
# (configs/demo_32.py unless a row overrides it), for the seeds given (default: 0 1).
# Usage: bash benchmarks/ablations.sh [ROW ...]   (rows: see the case below)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-"0 1"}
row() {  # label, then train flags
  local label=$1; shift
  for seed in $seeds; do python benchmarks/quality.py --label="$label" --seed="$seed" -- "$@"; done
}
for name in "${@:-baseline native-gp}"; do
  case $name in
    baseline)    row baseline ;;
    native-gp)   row native-gp --config.gp_scale=native ;;
    logistic-r1) row logistic-r1 --config.loss=logistic_r1 --config.r1_gamma=0.01 ;;  # gamma: ADA's CIFAR-10 (32x32) value
    diffaug)     row diffaug --config.augment_policy=color,translation,cutout ;;
    diffaug-t)   row diffaug-t --config.augment_policy=translation ;;
    ema-0.999)   row ema-0.999 --config.ema_beta=0.999 ;;
    lr-0.003)    row lr-0.003 --config.learning_rate=0.003 ;;
    lr-0.005)    row lr-0.005 --config.learning_rate=0.005 ;;
    wide)        row wide --config.fmap_base=512 --config.fmap_max=64 ;;
    no-mbstd)    row no-mbstd --config.mbstd_group_size=0 ;;
    batch-32)    row batch-32 --config.minibatch_default=32 ;;
    long-final)  row long-final --config.total_kimg=160 ;;
    kimg-120)    row kimg-120 --config.total_kimg=120 ;;  # what fits the 15-minute budget here
    unconditional)  row unconditional --config.conditional=False --config.class_balance=0 ;;
    unbalanced)  row unbalanced --config.class_balance=0 ;;  # reals at the data's class frequencies
    balance-0.5) row balance-0.5 --config.class_balance=0.5 ;;
    kimg-160)    row kimg-160 --config.total_kimg=160 ;;
    uniform-labels) row uniform-labels --config.fake_labels=uniform ;;  # G draws every class equally often
    # Phase lengths at the demo's kimg (the first table's rows ran at 96 kimg): shorter phases
    # leave more 32x32 stable training at the end. The demo's own are 8 + 8.
    phases-16)   row phases-16 --config.lod_training_kimg=16 --config.lod_transition_kimg=16 ;;
    phases-12)   row phases-12 --config.lod_training_kimg=12 --config.lod_transition_kimg=12 ;;
    phases-8)    row phases-8 --config.lod_training_kimg=8 --config.lod_transition_kimg=8 ;;
    *) echo "unknown row $name" >&2; exit 2 ;;
  esac
done
