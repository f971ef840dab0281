#!/usr/bin/env bash
# One GPU lease's A/B runs: ours (defaults and the switches still off) beside the PyTorch reference, in one call.
# On the GPU host, after `npm run build && scripts/gpu-pack.sh` here, with `.gpu` and `.ref` carried
# (bench/reference/README.md says how to export the reference into .ref/):
#
#   BUDGET=540 bash bench/lease-ab.sh            # part 1: models, reference, correctness of the candidates, a Full profile
#   PART=2 BUDGET=540 bash bench/lease-ab.sh     # part 2: per-call kernel sweeps (attention, Mamba, matmul)
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
CHUNK="FLASHDEPTH_MAMBA_CHUNK_TOKENS=64"
ATW="FLASHDEPTH_ATTENTION_WAVES=fit"
PIPE="FLASHDEPTH_ATTENTION_LAYOUT=12,1,16,1,4,64,1"
# Every attention of Full (the 2K student too) in 2 or 3 query tiles per subgroup: each staged K/V matrix serves 32 or 48 rows.
T2="FLASHDEPTH_ATTENTION_LAYOUT=9,2,16,1,4,32"
T2B="FLASHDEPTH_ATTENTION_LAYOUT=6,2,16,1,4,64"
T3="FLASHDEPTH_ATTENTION_LAYOUT=6,3,16,1,4,32"
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
  grep -E '"summary": true|"error"|mixedVsFp32|^error' "$R/$name.log" | cut -c1-600 >> "$SUM"
  cp "$SUM" "$R/"; tar czf "$OUT/r.tgz" -C "$OUT" r
}
bl() { local n=$1; shift; step "$n" 60 "$@" -- $B --config l --frames 40 --json "$R/$n.json"; }
bf() { local n=$1; shift; step "$n" 75 "$@" -- $B --config full --frames 25 --json "$R/$n.json"; }
bs() { local n=$1; shift; step "$n" 60 "$@" -- $B --config s --frames 100 --warmup 10 --json "$R/$n.json"; }
if [[ $PART == 1 ]]; then
  bl l-new X=1
  step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
  bf full-new X=1
  bs s-new X=1
  bf full-t2 $T2
  bf full-t2b $T2B
  bf full-t3 $T3
  bl l-new2 X=1
  bf full-new2 X=1
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile
  bl l-chunk $CHUNK
  bf full-atw $ATW
  bl l-pipe $PIPE
  step check-chunk 120 $CHUNK -- node dist/test/kernels/kernel-check.js --mixed-model-only
else
  step att-sweep 240 X=1 -- node dist/test/kernels/kernel-timing.js --attention-only
  step mamba-sweep 90 X=1 -- node dist/test/kernels/kernel-timing.js --mamba-only
  step mm-sweep 200 X=1 -- node dist/test/kernels/kernel-timing.js --matmul-only
fi
cat "$SUM"
