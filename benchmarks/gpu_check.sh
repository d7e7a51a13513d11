#!/usr/bin/env bash
# One-shot check of `--device cuda` on a CUDA machine, run from the repo root:
#   bash benchmarks/gpu_check.sh            (writes logs to $OUT, default /tmp/gpu-check)
# It runs tests/device (skipped on machines without CUDA) and times rlworks on CPU and CUDA beside
# Stable-Baselines3 on the same machine. Packages the machine lacks (gymnasium, stable-baselines3)
# can sit as wheels in .whl/; they are installed to /tmp/site first.
set -u
OUT=${OUT:-/tmp/gpu-check}
. benchmarks/gpu_prelude.sh
export OMP_NUM_THREADS=1
timeout 330 python3 -m pytest -q -p no:cacheprovider tests/device 2>&1 | tee "$OUT/pytest.txt"
# timings, one thread each: PPO CartPole (RL Zoo settings, 50k steps) and SAC Pendulum (RL Zoo, 3k steps)
for dev in cpu cuda; do
  for lib in rlworks sb3; do
    timeout 120 python3 benchmarks/deep_vs_sb3.py --lib $lib --device $dev --total-steps 50000 --eval-every 1000000000 \
      2>&1 | tail -1 | tee -a "$OUT/ppo.jsonl"
  done
  timeout 150 python3 benchmarks/offpolicy_vs_sb3.py --algo sac --seeds 1 --total-steps 3000 --eval-every 0 --device $dev \
    2>&1 | tee -a "$OUT/sac.txt"
done
