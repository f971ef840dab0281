#!/usr/bin/env bash
# One GPU lease's A/B runs: ours (defaults and the switches still off) beside the PyTorch reference, in one call.
# On the GPU host, after `npm run build && scripts/gpu-pack.sh` here, with `.gpu` and `.ref` carried
# (bench/reference/README.md says how to export the reference into .ref/):
#
#   BUDGET=540 bash bench/lease-ab.sh            # part 1: every tensor-core case on the card, then the open A/Bs on
#                                                # the models (REF=1: the reference first; SWEEP=1: an attention sweep
#                                                # and the driver's shader cache at the end)
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
# The open questions after session 19: its narrow conv blocks on S and L (only Full was measured: −0.5 ms; L's one
# run was inside its spread, S was not run), and its 18-subgroup attention through the wave fit (measured as an
# explicit layout) against the 12-subgroup layout everywhere.
SQUARE="FLASHDEPTH_TC_CONV_BLOCK=square"
NOFIT="FLASHDEPTH_ATTENTION_WAVES=off"
# SWEEP=1: the attention layouts part 1's sweep times on the 2K student and the Full teacher (after the default, twice).
SWEEP_LAYOUTS="12,1,16,1,4,64/every;18,1,16,1,4,32;17,1,16,1,4,32;16,1,16,1,4,48;14,1,16,1,4,64;20,1,16,1,4,16;12,1,16,1,4,16;9,1,16,1,4,32"
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
  # Every tensor-core case on the card's subgroup matrices (the masking forms among them).
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  # REF=1: the reference first, in the same call (a lease may have room for one call only).
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
  bs s-new X=1
  bs s-square $SQUARE
  bl l-new X=1
  bl l-square $SQUARE
  bf full-new X=1
  bf full-square $SQUARE
  bf full-nofit $NOFIT
  bs s-new2 X=1
  bs s-square2 $SQUARE
  bl l-new2 X=1
  bl l-square2 $SQUARE
  bf full-new2 X=1
  bf full-square2 $SQUARE
  # The attention sweep, with the NVIDIA driver's shader cache kept for scripts/sass-dump.py (on driver 580 it holds
  # no CUDA ELF images; the script then keeps the cache).
  if [[ ${SWEEP:-0} == 1 ]]; then
    rm -rf /tmp/nvcache; mkdir -p /tmp/nvcache
    step att-sweep 200 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="$SWEEP_LAYOUTS" \
      __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH=/tmp/nvcache __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
      -- node dist/test/kernels/kernel-timing.js --attention-only
    step sass 60 X=1 -- python3 scripts/sass-dump.py /tmp/nvcache --out "$R/sass" --min-shared 20000
  fi
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
