#!/usr/bin/env bash
# Everything issues 8 and 20 still need a CUDA GPU for, in stages that each fit one 10-minute command:
#
#   bash benchmarks/gpu_session.sh checks  [OUT]   # ~5 min: CUDA tests, the demo on CUDA (full bf16, then LoRA), --compile
#   bash benchmarks/gpu_session.sh bench   [OUT]   # ~8 min: minifc vs transformers+peft, gemma-3-1b, functiongemma-270m, llama-3.2-1b
#   bash benchmarks/gpu_session.sh bench8b [OUT]   # ~8 min: llama-3.1-8b: the default batch, a larger one with --compile
#   bash benchmarks/gpu_session.sh profile [OUT]   # ~3 min: a torch.profiler table of minifc's llama-3.1-8b step
#   bash benchmarks/gpu_session.sh qlora   [OUT]   # ~6 min, estimated (issue 20): NF4 CUDA test, QLoRA demo (+ --compile), llama-3.1-8b plain vs NF4
#   bash benchmarks/gpu_session.sh qlora_compile [OUT]  # ~8 min, estimated: the same 8B comparison with --compile
#   bash benchmarks/gpu_session.sh ddp     [OUT]   # ~4 min, estimated (issue 19): 2+ GPUs: tests/test_distributed.py on NCCL;
#                                                  # 1 GPU: the demo model, LoRA, one process vs FSDP2 at world size 1
#
# Logs and JSON go to OUT (default: $OUT if set, else ./gpu_out). Nothing is downloaded: models have
# random weights and the demo builds its own tiny model. The benchmark uses the real tokenizers when
# $MINIFC_REFERENCE/tokenizers holds them (carry them to the device in an ignored folder: llama-3.2's is
# 17 MB, each Gemma one 33 MB, against the device tool's 64 MiB per call), else it trains a small
# tokenizer on the spot and says so (token counts then differ from the CPU tables). The device image
# has torch 2.11 and transformers 5.17, below pyproject.toml's floors: a varlen kernel without an
# argument minifc passes shows as a warning ("varlen flash attention is not used") at the first step.
# Copy the numbers into benchmarks/RESULTS.md with the date, the device (nvidia-smi line printed first)
# and the versions.
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: bash benchmarks/gpu_session.sh checks|bench|bench8b|profile|qlora|qlora_compile|ddp [OUT]}
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
qlora)
  # NF4 on CUDA: codes as on CPU, inductor-compiled NF4 + LoRA blocks vs eager, no dequantized weight saved
  run nf4_cuda_tests $PY -m pytest -q -s -rs tests/test_nf4.py -k cuda
  # the demo's model, then QLoRA on it: loss falls, merged export; again with --compile (same losses to bf16 rounding)
  run qlora_base $PY train.py --model tiny --device cuda --epochs 1 --check-examples 0 --out "$out/tiny" --overwrite
  run qlora_demo $PY train.py --model "$out/tiny/final" --quantize nf4 --device cuda --epochs 1 --lr 1e-3 \
      --export --out "$out/qlora" --overwrite
  TORCH_LOGS=recompiles run qlora_demo_compile $PY train.py --model "$out/tiny/final" --quantize nf4 --device cuda \
      --epochs 1 --lr 1e-3 --compile --check-examples 0 --out "$out/qlora_compiled" --overwrite
  # full-depth llama-3.1-8b, random weights, bf16: step time and max_memory_allocated, plain LoRA vs NF4
  run bench_nf4_8b $PY benchmarks/bench_nf4.py --device cuda --models llama-3.1-8b "${TOKENIZERS[@]}" \
      --json "$out/bench_nf4_8b.json"
  ;;
ddp)
  if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    MINIFC_TEST_DEVICE=cuda run ddp_tests $PY -m pytest -q -rs tests/test_distributed.py
  else  # losses should agree to bf16 rounding; step time and memory from each log's step lines
    run ddp_demo $PY train.py --model tiny --device cuda --epochs 1 --out "$out/tiny" --overwrite
    run ddp_plain $PY train.py --model "$out/tiny/final" --device cuda --max-steps 20 --out "$out/plain" --overwrite
    run ddp_fsdp1 $PY -m torch.distributed.run --standalone --nproc-per-node 1 train.py --model "$out/tiny/final" \
        --device cuda --max-steps 20 --parallel fsdp --out "$out/fsdp1" --overwrite
  fi
  ;;
qlora_compile)
  run bench_nf4_8b_compiled $PY benchmarks/bench_nf4.py --device cuda --models llama-3.1-8b --compile \
      "${TOKENIZERS[@]}" --json "$out/bench_nf4_8b_compiled.json"
  ;;
*)
  echo "unknown stage $stage: checks, bench, bench8b, profile, qlora or qlora_compile" >&2; exit 2 ;;
esac
