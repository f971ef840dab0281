#!/usr/bin/env bash
# One GPU lease's A/B runs: ours (defaults and the switches still off) beside the PyTorch reference, in one call.
# On the GPU host, after `npm run build && scripts/gpu-pack.sh` here, with `.gpu` and `.ref` carried
# (bench/reference/README.md says how to export the reference into .ref/):
#
#   BUDGET=540 bash bench/lease-ab.sh            # part 1: the candidates on every tensor-core case, then on the models
#   PART=3 BEST="VAR=value …" BUDGET=540 bash bench/lease-ab.sh
#                                                # part 3: the reference, then BEST (part 1's winners) and the defaults
#                                                # again beside it, and a Full profile with BEST
#   PART=2 BUDGET=540 bash bench/lease-ab.sh     # part 2: per-call kernel sweeps (attention, matmul)
#
# BUDGET (seconds of this command): a step starts only if half its timeout still fits, and is cut at BUDGET + 20.
# Results: $OUT/summary.txt (one block per step: its switches, ms/frame and FPS) and $OUT/r.tgz (every log and JSON),
# rewritten after each step so that a call cut short still returns what ran.
set -u
source .gpu/env.sh
R=$OUT/r; mkdir -p "$R"; SUM=$OUT/summary.txt
BUDGET=${BUDGET:-540}
PART=${PART:-1}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv,noheader >> "$SUM" 2>&1
B="node dist/src/cli/main.js bench --backend webgpu --precision mixed"
# Session 18's candidates: the linear layers' large blocks in twice the subgroups (all, or only products at least
# 1024 deep), and the attention's softmax of sessions 5–17 against its vec4 form (the default since lease 18A).
MANY="FLASHDEPTH_TC_MATMUL_SUBGROUPS=many"
DEEP="FLASHDEPTH_TC_MATMUL_SUBGROUPS=deep"
SCALAR="FLASHDEPTH_ATTENTION_SOFTMAX=scalar"
# step NAME TIMEOUT [VAR=value …] -- COMMAND …
step() {
  local name=$1 tmo=$2; shift 2
  local envs=(); while [[ $1 != -- ]]; do envs+=("$1"); shift; done; shift
  if (( SECONDS + tmo / 2 > BUDGET )); then echo "skip $name (t=${SECONDS}s)" >> "$SUM"; return; fi
  local left=$(( BUDGET + 20 - SECONDS )); (( left < tmo )) && tmo=$left
  local t0=$SECONDS
  timeout "$tmo" env "${envs[@]}" "$@" > "$R/$name.log" 2>&1; local rc=$?
  echo "== $name rc=$rc t=${SECONDS}s (+$((SECONDS - t0))) ${envs[*]}" >> "$SUM"
  grep -E "^(s|l|full) .* webgpu " "$R/$name.log" | awk '{print "  " $1 ": " $(NF-3) " ms/frame, " $(NF-2) " FPS"}' >> "$SUM"
  grep -E '"summary": true|"error"|mixedVsFp32|maxAbsError|^error' "$R/$name.log" | cut -c1-300 >> "$SUM"
  cp "$SUM" "$R/"; tar czf "$OUT/r.tgz" -C "$OUT" r
}
bl() { local n=$1; shift; step "$n" 60 "$@" -- $B --config l --frames 40 --json "$R/$n.json"; }
bf() { local n=$1; shift; step "$n" 75 "$@" -- $B --config full --frames 25 --json "$R/$n.json"; }
bs() { local n=$1; shift; step "$n" 60 "$@" -- $B --config s --frames 100 --warmup 10 --json "$R/$n.json"; }
if [[ $PART == 1 ]]; then
  # Every tensor-core case on the card's subgroup matrices (the softmax forms and 12-subgroup blocks among them).
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  bf full-new X=1
  bf full-deep $DEEP
  bl l-new X=1
  bl l-deep $DEEP
  bs s-new X=1
  bs s-deep $DEEP
  bf full-deep2 $DEEP
  bf full-new2 X=1
  bl l-deep2 $DEEP
  bl l-new2 X=1
  bs s-deep2 $DEEP
  bs s-new2 X=1
elif [[ $PART == 3 ]]; then
  read -r -a BESTV <<< "${BEST:-X=1}"
  step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
  bf full-best "${BESTV[@]}"
  bl l-best "${BESTV[@]}"
  bs s-best "${BESTV[@]}"
  bf full-new2 X=1
  bl l-new2 X=1
  bf full-best2 "${BESTV[@]}"
  bl l-best2 "${BESTV[@]}"
  step full-prof 90 "${BESTV[@]}" -- $B --config full --frames 3 --profile
else
  step att-sweep 240 X=1 -- node dist/test/kernels/kernel-timing.js --attention-only
  step mm-sweep 240 X=1 -- node dist/test/kernels/kernel-timing.js --matmul-only
fi
cat "$SUM"
