# Sourced by the GPU check scripts (benchmarks/gpu_check.sh, benchmarks/gpu_issues.sh), from the repo root: makes
# $OUT, installs the wheels carried in .whl/ (packages the device machine lacks, e.g. gymnasium) into /tmp/site,
# puts src/ and them on PYTHONPATH, and writes the machine's GPU, cores and versions to $OUT/machine.txt.
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/src:${PYTHONPATH:-} HF_HUB_OFFLINE=1
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc
  python3 -c "import sys, torch, gymnasium; print(sys.version.split()[0], torch.__version__, gymnasium.__version__, torch.cuda.is_available())"
  python3 -c "import transformers; print('transformers', transformers.__version__)"
} 2>&1 | tee "$OUT/machine.txt"
