#!/usr/bin/env bash
# The prepared device check (issue 18): one call on the lent GPU machine, at most 8 minutes.
#
#   bash tools/device/wheels.sh                                   # here, first
#   run(command="bash tools/device/check.sh", carry=[".whl"], timeout_s=540)   # there
#   bash tools/device/check.sh --device cpu --quick               # here: the same logic on CPU (CI)
#
# Steps, each bounded by `timeout` and logged to $OUT/<step>.log; a failed step does not stop the
# others, and the exit code says whether any failed:
#   wheels    install .whl/*.whl into a temporary prefix (only where the envs or zarr are missing)
#   build     build the Cython extensions in place, unless they import already
#   facts     Python, torch, CUDA, nvidia-smi (facts.txt)
#   tests     the tests marked gpu (on CPU they skip; --quick there runs the learner-thread file)
#   profile-* python -m ezero_async.profiling for atari100k and atari100k-v2 on Breakout
#             (on CPU with --quick: the smoke preset on CartPole for a few seconds)
#   bench     tools/bench_learner.py (atari100k net, B=256)
#   fastpath  tools/bench_fastpath.py: eager vs CUDA graphs per search group (pUCT 50, Gumbel 16),
#             learner updates/s for AMP off/fp16/bf16 x TF32 x channels-last, in the same call
#   smi       nvidia-smi samples every 2 s during the whole check (smi.csv)
# $OUT is the device tool's return folder; here it defaults to ./device-out. $PYTHON: the
# interpreter (default python3, the one holding torch there).
set -uo pipefail
cd "$(dirname "$0")/../.."

device=cuda
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=${2:?--device needs cuda or cpu}; shift 2 ;;
        --quick) quick=1; shift ;;
        *) echo "check.sh: unknown argument '$1' (use --device cuda|cpu, --quick)" >&2; exit 2 ;;
    esac
done
case "$device" in cuda|cpu) ;; *) echo "check.sh: --device must be cuda or cpu, got '$device'" >&2; exit 2 ;; esac

out=${OUT:-$PWD/device-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
failed=()

say() { echo "$(date +%H:%M:%S) check: $*" | tee -a "$out/check.log"; }

# step NAME SECONDS COMMAND...: run it bounded, its output in $out/NAME.log.
step() {
    local name=$1 limit=$2
    shift 2
    say "$name: $*"
    local began=$SECONDS
    timeout --signal=INT --kill-after=20 "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        say "$name: ok in $((SECONDS - began)) s"
    else
        say "$name: FAILED (exit $rc after $((SECONDS - began)) s; last lines of $name.log below)"
        tail -n 5 "$out/$name.log" | sed 's/^/    /' | tee -a "$out/check.log"
        failed+=("$name")
    fi
}

smi_pid=
if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw,clocks.sm --format=csv -l 2 \
        > "$out/smi.csv" 2>&1 &
    smi_pid=$!
fi
trap '[ -n "$smi_pid" ] && kill "$smi_pid" 2> /dev/null' EXIT

if ! "$python" -c "import gymnasium, ale_py, zarr, minatar" 2> /dev/null && compgen -G ".whl/*.whl" > /dev/null; then
    step wheels 120 "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/ezero-site .whl/*.whl
    export PYTHONPATH="/tmp/ezero-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from this tree, not installed

exts="import ezero_async._ext.ctree, ezero_async._ext.gumbel, ezero_async._ext.sumtree, ezero_async._ext.frames"
if ! "$python" -c "$exts" 2> /dev/null; then
    step build 300 "$python" setup.py build_ext --inplace -j "$(nproc)"
fi

step facts 60 "$python" - <<'PY'
import platform, sys
import torch
print("python", sys.version.split()[0], platform.machine())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs")
import ezero_async._ext.ctree, gymnasium, ale_py, zarr, minatar, uvloop
print("gymnasium", gymnasium.__version__, "ale-py", ale_py.__version__, "zarr", zarr.__version__)
PY
cp "$out/facts.log" "$out/facts.txt" 2> /dev/null

if [ "$device" = cuda ]; then
    # Only the files holding gpu tests: collecting the others would import Aim, absent there.
    mapfile -t gpu_files < <(grep -l "mark.gpu" tests/test_*.py)
    step tests 180 "$python" -m pytest -q -m gpu -p no:cacheprovider "${gpu_files[@]}"
elif [ "$quick" = 1 ]; then
    step tests 180 "$python" -m pytest -q -p no:cacheprovider tests/test_learner_thread.py
fi

profile() {  # profile NAME ARGS...: the report's table in $out/NAME.log, its figures in $out/NAME.json
    local name=$1
    shift
    step "$name" "$limit_profile" "$python" -m ezero_async.profiling --no-aim --device "$device" \
        --run-dir "$out/runs/$name" "$@"
    cp "$out/runs/$name/profile.json" "$out/$name.json" 2> /dev/null
}
if [ "$quick" = 1 ]; then
    limit_profile=240
    profile profile-smoke --game CartPole --preset smoke --seconds 4 --warmup 1
else
    # The profiler shortens the learner's warm-up itself; start-up, warm-up and a 60 s window.
    limit_profile=170
    profile profile-atari100k --game Breakout --preset atari100k --seconds 60 --warmup 10
    profile profile-atari100k-v2 --game Breakout --preset atari100k-v2 --seconds 60 --warmup 10
fi

if [ "$quick" = 1 ]; then
    step bench 240 "$python" tools/bench_learner.py --device "$device" --preset smoke --frame 4 --actions 2 \
        --batch 32 --warmup 1 --steps 2
else
    step bench 120 "$python" tools/bench_learner.py --device "$device"
fi

if [ "$quick" = 1 ]; then
    step fastpath 240 "$python" tools/bench_fastpath.py --device "$device" --quick
else
    step fastpath 150 "$python" tools/bench_fastpath.py --device "$device"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    say "done: ${#failed[@]} step(s) failed: ${failed[*]} (logs in $out)"
    exit 1
fi
say "done: every step passed (logs in $out)"
