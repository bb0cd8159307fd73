#!/usr/bin/env bash
# Time chapters on the lent GPU machine: install the carried wheels, run each chapter with
# voicebook.runner, and leave what was measured under $OUT (see NOTES.md, "When a GPU is lent").
#
# Here, once per change of dependencies (writes .whl/, ~36 MiB: every chapter but 5's extras):
#   tools/device_wheels.sh
# Then one `run` call per batch of chapters, carry [".whl"] (chapter 5: see device_wheels.sh):
#   tools/device_run.sh [--preset standard] [--deadline SECONDS] [--param NAME=JSON]... 01 02 ...
#
# Chapters are named by their number (01 = notebooks/01_*.md) and run one after another until
# --deadline (default 540 s, under the 600-s call limit) would be passed: each chapter gets what
# is left, so a slow one is stopped and the next ones are reported as not run. Written under $OUT:
#   device.txt               the GPU, driver, torch and CUDA versions
#   timings.tsv              chapter, exit status, wall seconds (appended as each ends)
#   <chapter>/<chapter>.ipynb the executed notebook (papermill saves it cell by cell, so a stopped
#                            chapter still shows how far it got and its stage timings)
#   <chapter>/metrics.json   the chapter's numbers (chapter_seconds and stage seconds included)
#   <chapter>/log.txt        its output
# Checkpoints and caches stay on the machine (under /tmp), so that $OUT stays small.
set -uo pipefail
cd "$(dirname "$0")/.."
preset=standard; deadline=540; params=(); chapters=()
while (($#)); do
  case "$1" in
    --preset) preset="$2"; shift 2 ;;
    --deadline) deadline="$2"; shift 2 ;;
    --param) params+=(--param "$2"); shift 2 ;;
    *) chapters+=("$1"); shift ;;
  esac
done
((${#chapters[@]})) || { echo "usage: $0 [--preset P] [--deadline S] [--param NAME=JSON]... 01 02 ..." >&2; exit 2; }
out="${OUT:?set OUT to the folder that comes back}"
py="${PYTHON:-python3}"
site="$PWD/.devsite"          # ignored by git; kept between calls while the machine stays warm
start=$SECONDS

for dir in .whl .whl5; do     # .whl5: chapter 5's opencv 4.14 / ffmpeg, carried in a call of its own
  if compgen -G "$dir/*.whl" > /dev/null; then
    "$py" -m pip install -q --upgrade --no-index --no-deps --no-compile --target "$site" "$dir"/*.whl || exit 3
  fi
done
export PYTHONPATH="$PWD/lib:$site${PYTHONPATH:+:$PYTHONPATH}" PATH="$site/bin:$PATH"
export VOICEBOOK_CACHE="${VOICEBOOK_CACHE:-/tmp/voicebook-cache}" MPLBACKEND=Agg
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nproc; "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  "$py" -c "import cv2, papermill; print('opencv', cv2.__version__, 'papermill', papermill.__version__)" 2>&1
} > "$out/device.txt"
cat "$out/device.txt"

for ch in "${chapters[@]}"; do
  nb=$(ls notebooks/"$ch"_*.md 2>/dev/null | head -1)
  [[ -n "$nb" ]] || { echo "no chapter $ch" >&2; printf '%s\tmissing\t0\n' "$ch" >> "$out/timings.tsv"; continue; }
  name=$(basename "$nb" .md)
  left=$((deadline - (SECONDS - start)))
  if ((left < 30)); then printf '%s\tnot run (deadline)\t0\n' "$name" >> "$out/timings.tsv"; continue; fi
  work="/tmp/voicebook-runs"; mkdir -p "$out/$name" "$work"
  t0=$SECONDS
  timeout --kill-after=10 "$left" "$py" -m voicebook.runner "$nb" --preset "$preset" --out "$work" "${params[@]}" \
    > "$out/$name/log.txt" 2>&1
  rc=$?
  if ((rc == 124 || rc == 137)); then   # timeout stops papermill only: its kernel and spawned trainers would go on
    pkill -f ipykernel_launcher; pkill -f multiprocessing.spawn; sleep 2
  fi
  cp "$work/$name/$name.ipynb" "$work/$name/metrics.json" "$out/$name/" 2>/dev/null
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$out/timings.tsv"
  tail -5 "$out/$name/log.txt"
done
