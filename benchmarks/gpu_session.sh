#!/usr/bin/env bash
# Everything issue 8 still needs a CUDA GPU for, in stages that each fit one 10-minute command:
#
#   bash benchmarks/gpu_session.sh checks  [OUT]   # ~5 min: CUDA tests, the demo on CUDA (full bf16, then LoRA), --compile
#   bash benchmarks/gpu_session.sh bench   [OUT]   # ~8 min: minifc vs transformers+peft, gemma-3-1b, functiongemma-270m, llama-3.2-1b
#   bash benchmarks/gpu_session.sh bench8b [OUT]   # ~8 min: llama-3.1-8b: the default batch, a larger one with --compile
#   bash benchmarks/gpu_session.sh profile [OUT]   # ~3 min: a torch.profiler table of minifc's llama-3.1-8b step
#
# Logs and JSON go to OUT (default: $OUT if set, else ./gpu_out). Nothing is downloaded: models have
# random weights and the demo builds its own tiny model. The benchmark uses the real tokenizers when
# $MINIFC_REFERENCE/tokenizers holds them (carry them to the device in an ignored folder: llama-3.2's is
# 17 MB, each Gemma one 33 MB, against the device tool's 64 MiB per call), else it trains a small
# tokenizer on the spot and says so (token counts then differ from the CPU tables). The device image
# has torch 2.11 and transformers 5.17, below requirements.txt's floors: a varlen kernel without an
# argument minifc passes shows as a warning ("varlen flash attention is not used") at the first step.
# Copy the numbers into benchmarks/RESULTS.md with the date, the device (nvidia-smi line printed first)
# and the versions.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: bash benchmarks/gpu_session.sh checks|bench|bench8b|profile [OUT]}
out=${2:-${OUT:-gpu_out}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
PEAK=${PEAK_TFLOPS:-989}  # dense bf16 TFLOP/s of an H100 SXM / H200
TOKENIZERS=()
[ -d "${MINIFC_REFERENCE:-}/tokenizers" ] && TOKENIZERS=(--tokenizers "$MINIFC_REFERENCE/tokenizers")

run() {  # run "name" command...: print, time, and keep the log
  local name=$1; shift
  echo "=== $name: $*"
  local start=$SECONDS
  "$@" 2>&1 | tee "$out/$name.log"
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"

case $stage in
checks)
  # varlen vs SDPA (forward, backward), no host sync in the step, compiled blocks (inductor, bf16,
  # varlen) vs eager, bf16 vs fp32 loops; -s prints the measured differences
  run cuda_tests $PY -m pytest -q -s -rs tests/test_model.py tests/test_host_sync.py tests/test_compile.py \
      tests/test_bf16.py -k "cuda or varlen"
  # the demo: full fine-tune under bf16 autocast, then LoRA (bf16 base, varlen, fused AdamW) on its result
  run demo_full $PY train.py --model tiny --device cuda --epochs 2 --out "$out/tiny" --overwrite
  run demo_lora $PY train.py --model "$out/tiny/final" --device cuda --epochs 1 --lr 1e-3 --out "$out/lora" --overwrite
  # --compile: losses should match the eager run's (demo_lora.log) to bf16 rounding; a "recompile_limit"
  # line means a variant ran eagerly
  TORCH_LOGS=recompiles run demo_compile $PY train.py --model "$out/tiny/final" --device cuda --epochs 1 --lr 1e-3 \
      --compile --out "$out/lora_compiled" --overwrite
  ;;
bench)
  run bench $PY benchmarks/bench_train.py --device cuda --peak-tflops "$PEAK" "${TOKENIZERS[@]}" \
      --models gemma-3-1b functiongemma-270m llama-3.2-1b --json "$out/bench.json"
  ;;
bench8b)
  run bench8b $PY benchmarks/bench_train.py --device cuda --peak-tflops "$PEAK" --models llama-3.1-8b \
      "${TOKENIZERS[@]}" --json "$out/bench8b.json"
  run bench8b_32_compiled $PY benchmarks/bench_train.py --device cuda --peak-tflops "$PEAK" --models llama-3.1-8b \
      "${TOKENIZERS[@]}" --examples-per-step 32 --compile --no-memory --json "$out/bench8b_32_compiled.json"
  ;;
profile)
  run profile $PY benchmarks/profile_step.py --model llama-3.1-8b --examples-per-step 16 "${TOKENIZERS[@]}" --out "$out/profile_8b.txt"
  ;;
*)
  echo "unknown stage $stage: checks, bench, bench8b or profile" >&2; exit 2 ;;
esac
