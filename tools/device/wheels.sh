#!/usr/bin/env bash
# Run HERE, not on the GPU machine: download the wheels its Python 3.12 lacks into .whl/ (the
# device tool carries that folder; it is git-ignored through .git/info/exclude). The machine
# has torch + CUDA, numpy, Cython, uvloop, psutil, matplotlib, pandas, scipy, seaborn, PyYAML
# and typing-extensions (the device entry's KINDS.md lists its packages); it lacks the envs,
# zarr and its codecs, and Aim (left out: the check runs with tracking off).
#
#   bash tools/device/wheels.sh            # then: run(command="bash tools/device/check.sh", carry=[".whl"])
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.whl

# Versions this repository is tested with (CI's environment); one version of each.
packages=(
    gymnasium==1.4.0 farama-notifications==0.0.6
    ale-py==0.12.1
    minatar==1.0.15 pytz==2026.6
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
)
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done

grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dest" "${packages[@]}"

count=$(ls "$dest"/*.whl | wc -l)
bytes=$(du -sb "$dest" | cut -f1)
echo "wheels: $count files, $((bytes / 1048576)) MiB in $dest"
if [ "$count" -ne "${#packages[@]}" ]; then
    echo "wheels: expected ${#packages[@]} wheels, got $count" >&2
    exit 1
fi
# The device tool carries at most 64 MiB with the working tree.
if [ "$bytes" -gt $((48 * 1048576)) ]; then
    echo "wheels: $((bytes / 1048576)) MiB leaves too little of the tool's 64 MiB for the working tree" >&2
    exit 1
fi
