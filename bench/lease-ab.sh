#!/usr/bin/env bash
# One GPU lease's A/B runs: ours (defaults and the switches still off) beside the PyTorch reference, in one call.
# On the GPU host, after `npm run build && scripts/gpu-pack.sh` here, with `.gpu` and `.ref` carried
# (bench/reference/README.md says how to export the reference into .ref/):
#
#   BUDGET=540 bash bench/lease-ab.sh            # part 1: the candidates on every tensor-core case, then on the models
#                                                # (REF=1: the reference too, first)
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
# Session 19's candidates: the softmax's masks on every key block (sessions 5–18) against only the block that crosses
# the keys' end (the default since session 19); attention layouts with more warps per multiprocessor — 18 subgroups
# (288 rows: the 2K student's grid in 2 waves instead of 3), or workgroups of ≤ 31 KiB that could run two at a time;
# 3×3 convolutions to ≤ 64 channels in blocks as narrow as their channels.
EVERY="FLASHDEPTH_ATTENTION_MASKING=every"
SG18="FLASHDEPTH_ATTENTION_LAYOUT=18,1,16,1,4,32"
SG9X2="FLASHDEPTH_ATTENTION_LAYOUT=9,1,16,1,4,32"
NARROW="FLASHDEPTH_TC_CONV_BLOCK=narrow"
# The attention layouts part 1's sweep times on the 2K student and the Full teacher (after the default, twice).
SWEEP="12,1,16,1,4,64/every;18,1,16,1,4,32;17,1,16,1,4,32;16,1,16,1,4,48;14,1,16,1,4,64;20,1,16,1,4,16;12,1,16,1,4,16;10,1,16,1,4,16;9,1,16,1,4,32;8,1,16,1,4,32;11,1,16,1,4,16"
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
  bf full-new X=1
  bf full-every $EVERY
  bf full-narrow $NARROW
  # The attention sweep, with the NVIDIA driver's shader cache kept, then what the driver compiled (registers, shared
  # memory, opcodes: scripts/sass-dump.py).
  rm -rf /tmp/nvcache; mkdir -p /tmp/nvcache
  step att-sweep 200 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="$SWEEP" \
    __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH=/tmp/nvcache __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
    -- node dist/test/kernels/kernel-timing.js --attention-only
  step sass 60 X=1 -- python3 scripts/sass-dump.py /tmp/nvcache --out "$R/sass" --min-shared 20000
  # The sweep's fastest layout for the 2K student (plain softmax and masking), as FLASHDEPTH_ATTENTION_LAYOUT.
  SWEPT=$(python3 - "$R/att-sweep.log" <<'PY'
import json, re, sys
best = None
for line in open(sys.argv[1], errors='replace'):
    if not line.startswith('{"kind":"attention"') or '2K' not in line: continue
    for key, v in json.loads(line).items():
        m = re.fullmatch(r'tc_sg(\d+)_t(\d+)_k(\d+)_kv(\d)_o(\d)_sg(?:_s(\d+))?_\d+B(?:_\d+)?', key)
        if m and isinstance(v, dict) and v.get('gpuMs') and (best is None or v['gpuMs'] < best[0]):
            best = (v['gpuMs'], ','.join(g for g in m.groups() if g))
print(best[1] if best else '')
PY
)
  echo "swept best 2K-student layout: ${SWEPT:-none}" >> "$SUM"
  [[ -n $SWEPT ]] && bf full-swept FLASHDEPTH_ATTENTION_LAYOUT=$SWEPT $NARROW
  bl l-new X=1
  bl l-narrow $NARROW
  bf full-new2 X=1
  bf full-every2 $EVERY
  bf full-narrow2 $NARROW
  bf full-sg18 $SG18
  bf full-sg9 $SG9X2
  bs s-new X=1
  bs s-narrow $NARROW
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
