#!/usr/bin/env bash
# Build what tools/device_run.sh carries to the GPU machine (Python 3.12 wheels), here:
#   .whl/   tools/device-requirements.txt less what the machine has (~36 MiB): chapters 0-5
#   .whl5/  opencv-python-headless 4.14 (59 MiB; the machine's 5.0 has no Haar cascades), for
#           chapter 5's face detector: carried alone in a second call, right after a first call
#           with .whl (tools/device_run.sh installs both into .devsite/, which stays while the
#           machine is warm: it goes back after ~30 s idle)
# Not carried: dlib-bin + face-recognition-models (the 100 MB landmark-model sdist is over the
# 64 MiB carry): on the GPU machine faces_prep.landmarks falls back to the Haar path ("auto").
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl .whl5
../shared/device/wheels.sh -r tools/device-requirements.txt
rm -f .whl/imageio_ffmpeg-*.whl
plat=(--only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)
# tinysoundfont without its pyaudio dependency, as the Makefile installs it
python3 -m pip download -q --no-deps "${plat[@]}" -d .whl "$(grep -o 'tinysoundfont==[0-9.]*' Makefile)" \
  2> >(grep -v '^WARNING: Location' >&2)
mkdir -p .whl5
python3 -m pip download -q --no-deps "${plat[@]}" -d .whl5 "$(grep -o 'opencv-python-headless==[0-9.]*' pyproject.toml)" \
  2> >(grep -v '^WARNING: Location' >&2)
grep -qx '/.whl5/' .git/info/exclude 2>/dev/null || echo '/.whl5/' >> .git/info/exclude
du -sh .whl .whl5
