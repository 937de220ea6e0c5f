#!/usr/bin/env bash
# Bundle synthcal's dependencies for an offline machine whose Python already has numpy, scipy,
# scikit-image, tifffile, matplotlib, pandas, pyarrow, pytest and hypothesis (as the CUDA image that
# benchmarks/gpu_check.sh ran on, 4 Dec 2026: Python 3.12, no network). Writes one file, OUT
# (default .whl/site.tar.xz, about 44 MB), from wheels pip downloads here for that machine's Python.
#
# On the offline machine, in a checkout of this repository with OUT copied beside it:
#   mkdir -p /tmp/site && tar -xJf .whl/site.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD
#   PYTHON=python3 bash benchmarks/gpu_check.sh
#
# What it holds and why:
#   taichi (without its C API library and headers, 55 MB that synthcal never loads), trimesh, porespy and
#   what porespy imports at import time (connected-components-3d, dask, partd, locket, edt, deprecated),
#   xraydb (sqlalchemy, platformdirs), zarr (numcodecs, donfig, google-crc32c), tomli-w, dill;
#   and an empty stand-in for pyvista, which porespy imports at import time and synthcal never calls
#   (the real one needs VTK, too large to carry).
#
# Run: bash benchmarks/offline_bundle.sh [PYTHON_VERSION (default 3.12)] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-3.12}
OUT=${2:-.whl/site.tar.xz}
WORK=$(mktemp -d -t synthcal-bundle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# the versions CI installed on 4 Dec 2026 (.ci/run, Python 3.11), so that the offline machine runs what CI tested
PACKAGES=(taichi==1.7.4 dill==0.4.1 trimesh==5.2.0 porespy==3.2.0 connected-components-3d==4.1.1 dask==2026.8.0
          partd==1.4.2 locket==1.0.0 edt==3.0.0 deprecated==1.3.1 xraydb==4.5.8 sqlalchemy==2.1.9
          platformdirs==4.14.9 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
          tomli-w==1.2.0)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
echo "offline_bundle: downloading ${#PACKAGES[@]} packages for CPython $VERSION (x86_64)"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" --implementation cp \
    "${PLATFORMS[@]}" -d "$WORK/wheels" "${PACKAGES[@]}"
python3 -m pip install -q --no-deps --no-compile --ignore-requires-python --target "$WORK/site" --python-version "$VERSION" \
    --implementation cp --only-binary=:all: "${PLATFORMS[@]}" "$WORK"/wheels/*.whl
rm -rf "$WORK/site/taichi/_lib/c_api" "$WORK/site/bin" "$WORK/site/include" "$WORK/site/share"
mkdir -p "$WORK/site/pyvista"
echo '"""Stand-in for pyvista on an offline machine: porespy imports it at import time; synthcal never calls it."""' \
    > "$WORK/site/pyvista/__init__.py"
mkdir -p "$(dirname "$OUT")"
tar -C "$WORK/site" -cf - . | xz -T0 -6 > "$OUT.part"
mv "$OUT.part" "$OUT"
echo "offline_bundle: $OUT ($(du -h "$OUT" | cut -f1))"
