#!/usr/bin/env bash
# The newcomer's path through the data layer, on a fresh home (CVCYCLE_HOME), printing each step.
set -euo pipefail
out=${1:-.cvcycle/demo-out}
cv=".venv/bin/cvcycle"
step() { printf '\n\033[1m$ cvcycle %s\033[0m\n' "$*"; "$cv" "$@"; }

step init
step synth --dataset home --clips 4 --lighting day --seed 1
step dataset commit home -m "day scenes"
step synth --dataset home --clips 2 --lighting night --dogs --seed 2
step dataset commit home -m "night and dogs"
step dataset log home
step dataset diff home 1 2
step dataset show home@1 --slice val
step export home@1 --slice val --format coco -o "$out"
step import coco "$out/annotations.json" --images "$out/images" --dataset copy
step dataset show copy
step dataset slices home@2
step dataset materialize home@2 --slice train
