#!/usr/bin/env bash
# GPU check: synthcal's kernels with arch="gpu" on a machine with a CUDA GPU, compared with the CPU.
#
#  1. the DEM, projector, DVC and CPSD tests on the GPU (SYNTHCAL_TEST_ARCH=gpu pytest -m takes_arch);
#  2. a short, busy DEM on both backends, compared particle by particle;
#  3. scenarios/quick.toml on the CPU, then on the GPU from the CPU's DEM, compared stage by stage
#     (phantom, reconstruction, registration, DVC, scores);
#  4. quick's whole DEM on the GPU: timed, and checked for sanity only (the DEM is chaotic: after
#     10^5 steps two backends' packings differ as much as two seeds');
#  5. the paper scenario timed on the GPU: its imaging chain for one load step
#     (benchmarks/paper_imaging.py) and its stages from the DEM on, each within the time left.
#
# Every tolerance, and why it is what it is, is in benchmarks/gpu_compare.py. Prints one table
# (check, measured, tolerance, result) and exits 1 on any mismatch or failed step; runs unattended
# within BUDGET_S seconds (default 570, under 10 minutes): every step's limit is capped by what is left,
# and a step that ignores its SIGTERM is killed 10 s later. On a machine without a GPU it says so
# in one line and exits 0.
#
# Run: bash benchmarks/gpu_check.sh
#   On a machine without network whose Python lacks synthcal's dependencies, bundle them first where pip
#   works (benchmarks/offline_bundle.sh) and unpack them there onto PYTHONPATH (that script's header).
#   PYTHON     the interpreter with synthcal installed (default .venv/bin/python, else python3)
#   WORK       folder for runs and logs (default a new temporary folder; kept, its path is printed)
#   BUDGET_S   seconds for the whole check (default 570)
#   NVIDIA_SMI the command that lists GPUs (default nvidia-smi)
#   CHECK_ARCH the backend compared with the CPU (default gpu; cpu, with NVIDIA_SMI=true, runs the whole
#              script on the CPU: a dry run of the script itself on a machine without a GPU)
#   SCENARIO   the scenario of steps 3 and 4 (default scenarios/quick.toml; scenarios/tiny.toml for a dry run)
set -uo pipefail
cd "$(dirname "$0")/.."

NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
if ! "$NVIDIA_SMI" -L >/dev/null 2>&1; then
    echo "gpu_check: no CUDA GPU here ($NVIDIA_SMI -L lists none); nothing to check"
    exit 0
fi

ARCH=${CHECK_ARCH:-gpu}
ON=${ARCH^^}
SCENARIO=${SCENARIO:-scenarios/quick.toml}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BUDGET_S=${BUDGET_S:-570}
WORK=${WORK:-$(mktemp -d -t synthcal-gpu-check.XXXXXX)}
mkdir -p "$WORK"
TABLE=$WORK/gpu_check.tsv
LOG=$WORK/log.txt
: > "$TABLE"
: > "$LOG"
START=$SECONDS
CMP=("$PY" benchmarks/gpu_compare.py --table "$TABLE")
SET=(--set validation.report=false)

left() { echo $(( BUDGET_S - (SECONDS - START) )); }
cap() { local l; l=$(left); echo $(( l < $1 ? l : $1 )); }
row() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$TABLE"; }

# step NAME LIMIT_S COMMAND...: run it (output to the log); a row "FAIL" when it fails or times out
step() {
    local name=$1 limit=$2 rc
    shift 2
    if (( limit < 10 )); then
        row "$name" "not run: out of time" "runs" "FAIL"
        return 1
    fi
    echo "=== $name (at most $limit s): $*" >> "$LOG"
    timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    if (( rc != 0 )); then
        row "$name" "exit $rc$( (( rc == 124 )) && echo ": over $limit s")" "exit 0" "FAIL"
    fi
    return $rc
}

echo "gpu_check: $("$NVIDIA_SMI" -L | head -1); work folder $WORK"

if step "taichi starts on the $ON" "$(cap 120)" "$PY" -c "from analysis._taichi import ensure_taichi; ensure_taichi('$ARCH')"; then

    # 1. the kernels' tests, on the GPU
    t0=$SECONDS
    if step "tests on the $ON" "$(cap 240)" env SYNTHCAL_TEST_ARCH="$ARCH" "$PY" -m pytest -q -p no:cacheprovider \
            -m takes_arch tests/test_dem.py tests/test_projector.py tests/test_dvc.py tests/test_pores.py; then
        row "tests on the $ON: DEM, projector, DVC, CPSD" \
            "$(grep -Eo '[0-9]+ passed' "$LOG" | tail -1) in $((SECONDS - t0)) s" "all pass" "ok"
    fi

    # 2. a busy DEM, particle by particle
    step "busy DEM on the CPU" "$(cap 120)" "${CMP[@]}" drivers --arch cpu "$WORK/dem_cpu.npz" &&
        step "busy DEM on the $ON" "$(cap 120)" "${CMP[@]}" drivers --arch "$ARCH" "$WORK/dem_gpu.npz" &&
        step "compare the busy DEMs" "$(cap 60)" "${CMP[@]}" compare-drivers "$WORK/dem_cpu.npz" "$WORK/dem_gpu.npz"

    # 3. quick, stage by stage, from one DEM
    if step "quick on the CPU" "$(cap 300)" "$PY" -m synthcal.cli run "$SCENARIO" --arch cpu \
            --out "$WORK/quick_cpu" "${SET[@]}"; then
        "${CMP[@]}" stage-times "$WORK/quick_cpu" "quick, CPU:"
        mkdir -p "$WORK/quick_gpu"
        cp -r "$WORK/quick_cpu/dem" "$WORK/quick_gpu/dem"
        step "quick on the $ON from the CPU's DEM" "$(cap 240)" "$PY" -m synthcal.cli run "$SCENARIO" \
                --arch "$ARCH" --out "$WORK/quick_gpu" "${SET[@]}" &&
            step "compare quick, CPU and $ON" "$(cap 120)" "${CMP[@]}" compare-runs "$WORK/quick_cpu" "$WORK/quick_gpu" &&
            "${CMP[@]}" stage-times "$WORK/quick_gpu" "quick, $ON (its DEM is the CPU's):"

        # 4. quick's whole DEM on the GPU
        step "quick's DEM on the $ON" "$(cap 240)" "$PY" -m synthcal.cli run "$SCENARIO" --arch "$ARCH" \
                --until dem --out "$WORK/quick_gpu_dem" &&
            step "quick's DEM, sanity" "$(cap 60)" "${CMP[@]}" dem-sanity "$WORK/quick_cpu" "$WORK/quick_gpu_dem" &&
            "${CMP[@]}" stage-times "$WORK/quick_gpu_dem" "quick, $ON:"
    fi

    # 5. the paper scenario: timed, within what is left (running out of time is no failure here)
    limit=$(cap 240)
    if (( limit >= 30 )); then
        echo "=== paper imaging (at most $limit s)" >> "$LOG"
        mkdir -p "$WORK/paper_imaging"
        timeout -k 10 "$limit" "$PY" benchmarks/paper_imaging.py --arch "$ARCH" --work "$WORK/paper_imaging" \
            > "$WORK/paper_imaging.txt" 2>> "$LOG"
        rc=$?
        "${CMP[@]}" paper-imaging "$WORK/paper_imaging.txt"
        if (( rc == 124 )); then
            row "paper imaging on the $ON: the stages after those above" "not finished within $limit s" "" "ok"
        elif (( rc != 0 )); then
            row "paper imaging on the $ON" "exit $rc" "exit 0" "FAIL"
        fi
    fi
    limit=$(( $(left) - 15 ))
    if (( limit >= 30 )); then
        echo "=== paper run (at most $limit s)" >> "$LOG"
        timeout -k 10 "$limit" "$PY" -m synthcal.cli run scenarios/paper.toml --arch "$ARCH" --out "$WORK/paper" \
            "${SET[@]}" >> "$LOG" 2>&1
        rc=$?
        "${CMP[@]}" stage-times "$WORK/paper" "paper, $ON:"
        if (( rc == 124 )); then
            row "paper, $ON: the stages after those above" "not finished within $limit s" "" "ok"
        elif (( rc != 0 )); then
            row "paper on the $ON" "exit $rc" "exit 0" "FAIL"
        fi
    fi
fi

echo "gpu_check: $((SECONDS - START)) s; log $LOG"
"${CMP[@]}" table
