#!/usr/bin/env bash
# Issues 18 and 19's GPU checks in one short run on the device machine (about 5 minutes of an H100), from the repo
# root. The machine has torch with CUDA and transformers but not gymnasium, which `import rlworks` needs; prepare
# its wheels here first and carry them:
#   mkdir -p .whl && pip download --no-deps -d .whl gymnasium==1.4.0 farama-notifications cloudpickle
#   run(command="OUT=$OUT bash benchmarks/gpu_issues.sh", carry=[".whl"], timeout_s=540)
# Writes to $OUT: machine.txt; pytest.txt (the RLHF and search device tests); search.jsonl (issue 18: search
# simulations per second at B = 64, 256, 1024 roots, CPU walks and the CUDA tensor walk); rlhf.jsonl (issue 19:
# rollout tokens per second and one PPO iteration of a GPT-2-small-sized model, CUDA then CPU).
set -u
OUT=${OUT:-/tmp/gpu-issues}
. benchmarks/gpu_prelude.sh
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/device -k "rlhf or search" 2>&1 | tee "$OUT/pytest.txt"
timeout 150 python3 benchmarks/search_scaling.py --device cuda --seconds 3 2>&1 | tee "$OUT/search.jsonl"
timeout 200 python3 benchmarks/rlhf_gpu.py --devices cuda,cpu --size small --json "$OUT/rlhf.jsonl" 2>&1 \
  | tee "$OUT/rlhf.txt"
