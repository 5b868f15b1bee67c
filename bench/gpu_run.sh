#!/usr/bin/env bash
# One prepared command for a GPU lease: build, test, benchmark, train, evaluate, pack.
#
#   bash bench/gpu_run.sh OUTDIR [TRAIN_MINUTES]          # on a CUDA machine, from the repository root
#   B2V_GPU_RUN_DRY=1 bash bench/gpu_run.sh OUTDIR 0.05   # the same stages on a CPU, tiny sizes (tests/)
#
# Each stage runs under its own time limit, and a failed or timed-out stage is recorded and
# skipped past, so one failure still leaves every other result. Data generation starts first,
# in the background, and overlaps the build, the tests and the benchmarks.
# OUTDIR ends up with at most 8 files (what a lease's file transfer brings back):
#   summary.md   each stage's status and seconds, the training's last lines, the held-out table
#   weights.pt   the trained model (slim, hash-checked; b2v_rnn.export), and weights.pt.sha256
#   bench.json   pytest-benchmark JSON of the CUDA benchmarks
#   results.tar.gz  every log, the run's CSVs, sample GIFs and plots, metrics.json, evaluation figures
# and details/ (or $B2V_GPU_DETAILS) with the same files unpacked, the generated data and the full
# checkpoints. On a lease whose transfer counts files, point B2V_GPU_DETAILS outside OUTDIR.
# Knobs (environment): B2V_GPU_PRESET (small), B2V_GPU_BATCH (64), B2V_GPU_CROP (80), B2V_GPU_CLIPS
# (2048 training clips), B2V_GPU_SCENES (real_motion), B2V_GPU_SIZE (96 px), B2V_GPU_BENCH (pytest -k filter),
# B2V_GPU_PHOTOS (a folder of photographs: the training clips are then the scene families of
# b2v_rnn/data/families.py in their training mix, drawn from it, instead of B2V_GPU_SCENES),
# B2V_GPU_INIT (a checkpoint to start from, e.g. b2v_rnn/weights/default.pt), B2V_GPU_TRAIN_ARGS and
# B2V_GPU_SUITE_ARGS (more options for train and for the suite, e.g. "--photos photos/heldout_natural
# --middle-gate 0.008 --frame-gate 0.002"). The last stage judges the weights on the do-no-harm suite.
set -uo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: bench/gpu_run.sh OUTDIR [TRAIN_MINUTES]}
minutes=${2:-10}
dry=${B2V_GPU_RUN_DRY:-0}
python=${PYTHON:-python3}
details=${B2V_GPU_DETAILS:-$out/details}
logs="$details/logs"
mkdir -p "$logs"
summary="$out/summary.md"
start_all=$(date +%s)

if [ "$dry" = 1 ]; then
    device=cpu; preset=tiny; batch=4; crop=40; clips=24; size=48; scenes=broad
    bench_filter=${B2V_GPU_BENCH:-"tiny-b4 and fp32"}; test_files="tests/test_ops_dispatch.py"
    test_filter="cuda_default or reachable"; bench_files="bench/bench_train.py"; bench_mode="--benchmark-only"
    heldout_clips=8; heldout_size=48; suite_scenes="--n 1 --size 40"
else
    device=cuda; preset=${B2V_GPU_PRESET:-small}; batch=${B2V_GPU_BATCH:-64}; crop=${B2V_GPU_CROP:-80}
    clips=${B2V_GPU_CLIPS:-2048}; size=${B2V_GPU_SIZE:-96}; scenes=${B2V_GPU_SCENES:-real_motion}
    bench_filter=${B2V_GPU_BENCH:-"(720x1280 and not float32) or cuda_default or small-b64 or (paper-b24 and bf16) or (preact and 720x1280 and bfloat16)"}
    test_files="tests/test_ops_cuda.py tests/test_ops_dispatch.py"; test_filter=""
    bench_files="bench/bench_model.py bench/bench_train.py bench/bench_ops_cuda.py"; bench_mode="--benchmark-only"
    heldout_clips=64; heldout_size=96; suite_scenes="--n 16"
fi
photos=${B2V_GPU_PHOTOS:-}
if [ -n "$photos" ]; then
    scene_args="--mix default --photos $photos"  # the scene families, from these photographs
else
    scene_args="--preset $scenes"
fi
init_args=""
[ -n "${B2V_GPU_INIT:-}" ] && init_args="--init $B2V_GPU_INIT --stage finetune"

{
    echo "# b2v_rnn GPU run"
    echo
    echo "started $(date -u +%FT%TZ), training budget $minutes min, device $device, preset $preset, batch $batch, crop $crop"
    echo "training clips: $clips, ${scene_args}${B2V_GPU_INIT:+, starting from $B2V_GPU_INIT}"
    echo
    echo "| stage | status | seconds |"
    echo "|---|---|---:|"
} > "$summary"

stage() {  # stage NAME LIMIT_SECONDS COMMAND...: run with a time limit, log, record the status
    local name=$1 limit=$2
    shift 2
    local t0 status
    t0=$(date +%s)
    echo "== $name (limit ${limit} s)"
    timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$logs/$name.log" 2>&1
    status=$?
    case $status in
        0) status=ok ;;
        124|137) status="timed out" ;;
        *) status="failed ($status)" ;;
    esac
    echo "| $name | $status | $(( $(date +%s) - t0 )) |" >> "$summary"
    echo "   $name: $status"
    tail -n 3 "$logs/$name.log" | sed 's/^/   /'
}

# 1. what the machine is
stage environment 60 bash -c "nvidia-smi || true; $python -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name())'; nproc; free -g"

# 2. data, in the background: the training clips and the held-out split
data="$details/data"
mkdir -p "$data"
export B2V_DATA_DIR="$data/cache"
(
    timeout 600 $python -m data_tools.synthetic --out "$data/train.h5" --n "$clips" --T 7 --size "$size" --seed 20 \
        $scene_args --quiet --overwrite && \
    timeout 300 $python -m data_tools.synthetic --out "$data/val.h5" --n 32 --T 7 --size "$size" --seed 21 \
        $scene_args --quiet --overwrite && \
    timeout 300 $python -m data_tools.synthetic --out "$data/test_heldout.h5" --n "$heldout_clips" --T 7 \
        --size "$heldout_size" --seed 12 \
        --preset held_out --quiet --overwrite
) > "$logs/data.log" 2>&1 &
data_pid=$!

# 3. build the extension for this GPU (skipped in the dry run: the tests' own build serves)
if [ "$dry" != 1 ]; then
    stage build 300 env TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}" \
        $python -m pip install -q --no-build-isolation --no-deps -e .
fi

# 4. CUDA tests, 5. benchmarks
junit="$details/tests.xml"
if [ -n "$test_filter" ]; then
    stage tests 240 $python -m pytest $test_files -q -x --junitxml="$junit" -k "$test_filter"
else
    stage tests 240 $python -m pytest $test_files -q --junitxml="$junit"
fi
stage benchmarks 300 $python -m pytest $bench_files -q $bench_mode -k "$bench_filter" \
    --benchmark-json="$out/bench.json" -p no:cacheprovider

# 6. train within the budget (the data must be there first)
t0=$(date +%s)
wait "$data_pid"
data_status=$?
echo "| data (background) | $([ $data_status = 0 ] && echo ok || echo "failed ($data_status)") | waited $(( $(date +%s) - t0 )) |" >> "$summary"
run="$details/run"
train_limit=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 180 }')
stage train "$train_limit" $python -m b2v_rnn.train --T 7 --preset "$preset" --device "$device" --amp \
    --train "$data/train.h5" --val "$data/val.h5" --batch-size "$batch" --crop "$crop" --minutes "$minutes" \
    --val-every 1000000 --log-every 50 --save-minutes 2 --val-samples 0 --out "$run" --overwrite --no-progress \
    $init_args ${B2V_GPU_TRAIN_ARGS:-}

# 7. evaluate the last weights on the held-out split, 8. export them
checkpoint="$run/checkpoint.pt"
stage evaluate 300 $python -m b2v_rnn.evaluate --checkpoint "$checkpoint" --data "$data/test_heldout.h5" \
    --out "$details/eval" --device "$device" --overwrite
stage export 60 $python -m b2v_rnn.export "$checkpoint" --out "$out/weights.pt" --overwrite

# 9. the do-no-harm suite (docs/design.md §7.8): families and photographs training never saw
stage suite 600 $python -m b2v_rnn.suite --checkpoint "$out/weights.pt" $suite_scenes --device "$device" \
    --out "$details/suite" --overwrite ${B2V_GPU_SUITE_ARGS:-}

# 10. pack
{
    echo
    echo "total $(( $(date +%s) - start_all )) s"
    echo
    echo "## training (last lines)"
    echo '```'
    grep -E "^(step|val|done|stopped|b2v_rnn.train|ops:)" "$logs/train.log" 2>/dev/null | tail -n 12
    echo '```'
    echo
    echo "## held-out evaluation"
    echo '```'
    tr '\r' '\n' < "$logs/evaluate.log" 2>/dev/null | grep -v '%|' | tail -n 20
    echo '```'
    echo
    echo "## do-no-harm suite"
    echo '```'
    cat "$details/suite/suite.txt" 2>/dev/null || tail -n 5 "$logs/suite.log"
    echo '```'
} >> "$summary"
cp "$summary" "$details/summary.md"
tar -czf "$out/results.tar.gz" -C "$details" --exclude=data --exclude='*.pt' . 2>/dev/null
echo "== done: $summary"
cat "$summary"
