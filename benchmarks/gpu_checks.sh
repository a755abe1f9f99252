#!/usr/bin/env bash
# The GPU checks, as one script for a lent H100/H200 (see the device tool's README):
#   python wheels for what the GPU image lacks are carried in .gpu_wheels/ (pip download --python-version 3.12 ...)
#   a tiny model folder (tokenizer for the decoding check) is carried in .gpu_tiny/ (chatmusician-hf init-tiny)
#   bash benchmarks/gpu_checks.sh [train] [decode]    (default both; logs go to $OUT, or ./gpu-results)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
if [ -d .gpu_wheels ]; then
  python3 -m pip install -q --no-deps --no-index .gpu_wheels/*.whl 2>&1 | tail -2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"

checks=${*:-train decode}
if [[ $checks == *train* ]]; then
  echo "== CPT throughput, LLaMA-2-7B shape"
  timeout 420 python3 benchmarks/train_throughput.py --shape 7b --device cuda --steps 16 --liger 2>&1 | tee "$OUT/train_throughput.txt"
fi
if [[ $checks == *decode* ]]; then
  echo "== constrained decoding overhead, 7B shape"
  timeout 240 python3 benchmarks/constrained_decoding.py --device cuda --shape 7b --model .gpu_tiny --no-quality \
    --batch 8 --max-new-tokens 128 2>&1 | tee "$OUT/constrained_decoding.txt"
fi
