#!/usr/bin/env bash
# One GPU lease's A/B runs: ours (defaults and the switches still off) beside the PyTorch reference, in one call.
# On the GPU host, after `npm run build && scripts/gpu-pack.sh` here, with `.gpu` and `.ref` carried
# (bench/reference/README.md says how to export the reference into .ref/):
#
#   BUDGET=540 bash bench/lease-ab.sh            # part 1: every tensor-core case on the card, then the open A/Bs on
#                                                # the models (REF=1: the reference first; REFPROF=1: then its Full
#                                                # profile; SWEEP=1: an attention sweep on ViT-L at 518² and the
#                                                # driver's shader cache at the end)
#   PART=3 BEST="VAR=value …" BUDGET=540 bash bench/lease-ab.sh
#                                                # part 3: the reference, then BEST (part 1's winners) and the defaults
#                                                # again beside it, and a Full profile with BEST
#   PART=2 BUDGET=540 bash bench/lease-ab.sh     # part 2: per-call kernel sweeps (attention, matmul)
#   PART=4 BUDGET=540 bash bench/lease-ab.sh     # part 4: the attention's spread banks and f16 exponentials (sweep
#                                                # and Full A/B), the reference's per-kernel profile, a Full profile
#   PART=5 BUDGET=330 bash bench/lease-ab.sh     # part 5: the spread-bank defaults against session 19's on Full (twice)
#                                                # and L, then the reference's Full profile
#   REF=1 PART=6 BUDGET=480 bash bench/lease-ab.sh
#                                                # part 6 (session 21): S with the old epilogue sync, Full with the
#                                                # residual prefetch, L with spread banks (twice each), a Full profile
#   PART=7 REF=1 BUDGET=520 bash bench/lease-ab.sh
#                                                # part 7 (session 21): loads two slices ahead (with and without the
#                                                # residual prefetch) on Full, L and S, a Full profile, the reference
#   PART=8 BUDGET=540 bash bench/lease-ab.sh
#                                                # part 8 (session 22): the big matmul blocks on Full and L, the linear
#                                                # layers' epilogue timings, Full profiles (REF=1: the reference last)
#   PART=9 REF=1 BUDGET=400 bash bench/lease-ab.sh
#                                                # part 9 (session 22): workgroup-memory operand forms, the epilogue
#                                                # timings with the clock up, the defaults, the reference
#   PART=10 BUDGET=360 bash bench/lease-ab.sh
#                                                # part 10 (session 22, run as lease 23A): u32 tiles and the vec4
#                                                # epilogue scratch against the defaults on Full, L and S, Full
#                                                # profiles (REF=1: the reference last)
#   PART=11 REF=1 BUDGET=380 bash bench/lease-ab.sh
#                                                # part 11 (session 23; run as 24A, where the vote's shaders did not
#                                                # compile, and 24B): the attention's row maxima by vote against the
#                                                # shuffles, per call and on Full, L and S (REF=1: the reference last)
#   PART=12 REF=1 BUDGET=400 bash bench/lease-ab.sh
#                                                # part 12 (session 24, run as 24C): the vote in 12-subgroup layouts, where 24B
#                                                # found it faster per call, swept and as Full's layout (profiles and
#                                                # A/Bs); REF=1: the reference's Full last
#   PART=13 REF=1 BUDGET=300 bash bench/lease-ab.sh
#                                                # part 13 (session 24, not yet run): session 24's 12-subgroup default
#                                                # (spread banks, vote) on the card — its kernel cases, S and L in
#                                                # mixed precision against fp32 — then L and Full against session 23's
#                                                # layouts, twice each, and L profiles (REF=1: the reference last)
#   PART=14 BUDGET=500 bash bench/lease-ab.sh
#                                                # part 14 (session 25): the epilogue's vec4 global reads and stores
#                                                # (the new default) against single floats — every tensor-core case
#                                                # on the card, per call (with FLASHDEPTH_TC_MATMUL_WAVES=fitAll's
#                                                # blocks), Full, L and S A/Bs, Full with fitAll, a Full profile
#   PART=14 ran as lease 25A (cut after L's pair: refused starts took the device time).
#   PART=15 REF=1 BUDGET=420 bash bench/lease-ab.sh
#                                                # part 15 (session 25, not yet run): Full with and without the
#                                                # residual prefetch (twice each), part 13's pairs against session
#                                                # 23's attention layouts, S and L mixed vs fp32 (REF=1: the
#                                                # reference's Full last)
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
# Part 1 as lease 21A ran it (its answers are in bench/README.md, session 21). The open questions after session 20: its
# untimed fusions (against UNFUSED), the matmul epilogue ordered by each
# subgroup instead of two workgroup barriers per accumulator tile (untimed), and the spread banks in the 12-subgroup attention layout on ViT-L at 518² (its
# sweep row in lease 20B was disturbed; the explicit layout takes the wave fit off, which L's one-wave grid does not
# use anyway).
EPISG="FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC=subgroup"
# Session 20's two fusions (on by default, untimed) taken off: the RCUs' ReLU and skip, the ViT norm's CLS slice.
UNFUSED="FLASHDEPTH_RCU_FUSION=off FLASHDEPTH_PATCH_NORM_FUSION=off"
LSPREAD="FLASHDEPTH_ATTENTION_LAYOUT=12,1,16,1,4,64/spread"
# SWEEP=1: the attention layouts part 1's sweep times on ViT-L at 518² (after the default, twice).
SWEEP_LAYOUTS="12,1,16,1,4,64/spread;18,1,16,1,4,16/spread;12,1,16,1,4,64;8,1,32,1,4,64/spread"
# PART=4: the spread banks (with dense P rows where 18 subgroups need them to fit 48 KiB) and f16 exponentials against
# each layout as it is, on the 2K student, the Full teacher and ViT-L at 518².
SPREAD_LAYOUTS="18,1,16,1,4,32/spread/dense;18,1,16,1,4,32/exp16;18,1,16,1,4,32/spread/dense/exp16;18,1,16,1,4,16/spread;12,1,16,1,4,64/spread;16,1,16,1,4,32/spread;9,2,16,1,4,32/spread/dense;8,1,32,1,4,64/spread;18,1,16,1,4,32"
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
  # REFPROF=1: the reference's Full frame by kernel (its GPU time per family; lease 20B's step ran out of time).
  [[ ${REFPROF:-0} == 1 ]] && step reference-prof 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models full --items 1 --profile 8 --out "$R/ref.jsonl"
  bf full-new X=1
  bf full-episg $EPISG
  bf full-unfused $UNFUSED
  bl l-new X=1
  bl l-episg $EPISG
  bl l-spread $LSPREAD
  bs s-new X=1
  bs s-episg $EPISG
  bf full-new2 X=1
  bf full-episg2 $EPISG
  bf full-unfused2 $UNFUSED
  bl l-new2 X=1
  bl l-episg2 $EPISG
  bl l-spread2 $LSPREAD
  # The attention sweep, with the NVIDIA driver's shader cache kept for scripts/sass-dump.py (on driver 580 it holds
  # no CUDA ELF images; the script then keeps the cache).
  if [[ ${SWEEP:-0} == 1 ]]; then
    rm -rf /tmp/nvcache; mkdir -p /tmp/nvcache
    step att-sweep 200 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="L 518" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="$SWEEP_LAYOUTS" \
      __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH=/tmp/nvcache __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
      -- node dist/test/kernels/kernel-timing.js --attention-only
    step sass 60 X=1 -- python3 scripts/sass-dump.py /tmp/nvcache --out "$R/sass" --min-shared 20000
  fi
elif [[ $PART == 6 ]]; then
  # Session 21: the epilogue ordered by subgroups (the default since lease 21A; WG is the old one) on S, the residual
  # prefetch on Full, the 12-subgroup attention layout with spread banks on L, then a Full profile of the defaults.
  WG="FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC=workgroup"
  PRE="FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=on"
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
  for r in "" 2; do
    bf full-new$r X=1
    bf full-pre$r $PRE
    bl l-new$r X=1
    bl l-spread$r $LSPREAD
    bs s-new$r X=1
    bs s-wg$r $WG
  done
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
elif [[ $PART == 7 ]]; then
  # Session 21, second: global loads two slices ahead of the multiplies (AHEAD), alone and with the residual prefetch,
  # on Full, L and S (twice each), a Full profile with AHEAD, then (REF=1) the reference last.
  AHEAD="FLASHDEPTH_TC_MATMUL_LOAD_AHEAD=2"
  PRE="FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=on"
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  for r in "" 2; do
    bf full-new$r X=1
    bf full-ahead$r $AHEAD
    bf full-aheadpre$r $AHEAD $PRE
    bl l-new$r X=1
    bl l-ahead$r $AHEAD
    bs s-new$r X=1
    bs s-ahead$r $AHEAD
  done
  step full-prof 90 $AHEAD -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 8 ]]; then
  # Session 22: the big matmul blocks (8 subgroups of 64×64) on Full and L (twice each, 256×128 against the defaults;
  # 128×256 once), the Full linear layers' time split between slices and fixed cost per block, and Full profiles of
  # the defaults, the 256×128 block and the residual prefetch; (REF=1) the reference last.
  BIG="FLASHDEPTH_TC_MATMUL_BIG_BLOCK=256x128"
  WIDE="FLASHDEPTH_TC_MATMUL_BIG_BLOCK=128x256"
  PRE="FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=on"
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  for r in "" 2; do
    bf full-new$r X=1
    bf full-big$r $BIG
    bl l-new$r X=1
    bl l-big$r $BIG
  done
  bf full-wide $WIDE
  step mm-epilogue 150 X=1 -- node dist/test/kernels/kernel-timing.js --matmul-epilogue
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
  step full-prof-big 90 $BIG -- $B --config full --frames 3 --profile --json "$R/full-prof-big.json"
  step full-prof-pre 90 $PRE -- $B --config full --frames 3 --profile --json "$R/full-prof-pre.json"
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 9 ]]; then
  # Session 22, second: workgroup-memory operand forms for subgroup-matrix loads (element type, padded rows), the
  # linear layers' epilogue share timed with the clock up, then the defaults on Full, L and S and (REF=1) the reference.
  step wg-forms 120 FLASHDEPTH_DAWN_FEATURES=disable_robustness -- node scripts/tc-ceiling.mjs --forms --json "$R/wg-forms.json"
  step mm-epilogue 150 X=1 -- node dist/test/kernels/kernel-timing.js --matmul-epilogue
  bf full-new X=1
  bl l-new X=1
  bs s-new X=1
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 10 ]]; then
  # Session 22, third: the tensor-core kernels' staged tiles as u32 words (U32) and the matmul epilogue's scratch in
  # vec4<f32> rows of 20 floats (SCR), against the defaults: their kernel cases on the card, Full, profiles, L, then
  # (time permitting) Full with U32 alone, S, Full again and (REF=1) the reference.
  U32="FLASHDEPTH_TC_TILE_ELEMENT=u32"
  SCR="FLASHDEPTH_TC_MATMUL_SCRATCH=vec4"
  step check-u32 60 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices --only "u32 tiles"
  bf full-new X=1
  bf full-both $U32 $SCR
  # The attention layouts with u32 tiles (session 23): the defaults of the 2K student and the teacher, 32-key stages,
  # two tiles per subgroup (both tile forms), 32-key blocks, against the defaults with vec4 tiles.
  step att-u32 150 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="18,1,16,1,4,16/spread/u32;12,1,16,1,4,64/u32;18,1,16,1,4,16/spread;18,1,16,1,4,32/spread/dense/u32;9,2,16,1,4,32/u32;9,2,16,1,4,32;9,2,16,1,4,16/spread/u32;8,1,32,1,4,64/u32" \
    -- node dist/test/kernels/kernel-timing.js --attention-only
  step full-prof-both 90 $U32 $SCR -- $B --config full --frames 3 --profile --json "$R/full-prof-both.json"
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
  bl l-new X=1
  bl l-both $U32 $SCR
  bf full-u32 $U32
  bs s-new X=1
  bs s-both $U32 $SCR
  bf full-both2 $U32 $SCR
  bf full-new2 X=1
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 11 ]]; then
  # Session 23, second: the attention's row maxima by vote (VOTE) against the shuffles in every block: their kernel
  # cases on the card, the attention sweep on the 2K student and the teacher, Full, L and S A/Bs, a Full profile and
  # (REF=1) the reference.
  VOTE="FLASHDEPTH_ATTENTION_ROW_MAX=vote"
  step check-vote 60 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices --only "row maxima by vote"
  step att-vote 120 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher,L 518" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="18,1,16,1,4,16/spread/vote;18,1,16,1,4,16/spread;12,1,16,1,4,64/vote;9,2,16,1,4,16/spread/vote" \
    -- node dist/test/kernels/kernel-timing.js --attention-only
  bf full-new X=1
  bf full-vote $VOTE
  bf full-vote2 $VOTE
  bf full-new2 X=1
  bl l-new X=1
  bl l-vote $VOTE
  bs s-new X=1
  bs s-vote $VOTE
  step full-prof-vote 90 $VOTE -- $B --config full --frames 3 --profile --json "$R/full-prof-vote.json"
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 12 ]]; then
  # Session 24: in lease 24B the vote took the 12-subgroup layout's attention 1.589 → 1.428 ms per 2K student call and
  # 0.0916 → 0.0847 on ViT-L at 518², but the default 18-subgroup spread layout 1.390 → 1.490. The 12-subgroup layouts
  # with the vote (and spread banks), swept; then the best guess as every attention's layout in Full (explicit layouts
  # take the wave fit off).
  V12="FLASHDEPTH_ATTENTION_LAYOUT=12,1,16,1,4,64/spread/vote"
  # The adapter's subgroup-matrix configurations (is there an f16 result, for f16 attention scores?).
  step configs 20 X=1 -- node --input-type=module -e "import { createRequire } from 'module'; const { create, globals } = createRequire(process.cwd() + '/')('webgpu'); Object.assign(globalThis, globals); const a = await create(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia']).requestAdapter(); console.log('configs', JSON.stringify(a.info.subgroupMatrixConfigs)); process.exit(0);"
  grep configs "$R/configs.log" | cut -c1-600 >> "$SUM"
  step att-vote12 150 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher,L 518" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="12,1,16,1,4,64/spread/vote;12,1,16,1,4,64/spread;12,1,16,1,4,64/vote;12,1,16,1,4,32/spread/vote;12,1,16,1,4,16/spread/vote;16,1,16,1,4,32/spread/vote;18,1,16,1,4,16/vote;18,1,16,1,4,16/spread" \
    -- node dist/test/kernels/kernel-timing.js --attention-only
  step full-prof-v12 90 "$V12" -- $B --config full --frames 3 --profile --json "$R/full-prof-v12.json"
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
  bf full-new X=1
  bf full-v12 "$V12"
  bf full-v12b "$V12"
  bf full-new2 X=1
  [[ ${REF:-0} == 1 ]] && step reference 110 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 14 ]]; then
  # Session 25: the matmul epilogue's bias, γ and residual read and C written as one vec4 per four columns (halves as
  # one 8-byte store), where every access was a single float (SCALAR, sessions 5–24).
  SCALAR="FLASHDEPTH_TC_MATMUL_EPILOGUE_IO=scalar"
  step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  step epi 120 X=1 -- node dist/test/kernels/kernel-timing.js --matmul-epilogue
  bf full-new X=1
  bf full-scalar $SCALAR
  bf full-new2 X=1
  bf full-scalar2 $SCALAR
  bl l-new X=1
  bl l-scalar $SCALAR
  bs s-new X=1
  bs s-scalar $SCALAR
  bf full-fitall FLASHDEPTH_TC_MATMUL_WAVES=fitAll
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
elif [[ $PART == 15 ]]; then
  # Session 25's defaults from per-call times (the residual prefetch; the Full teacher's fc1 in 144-row blocks) as
  # whole models, and session 24's pending pairs against session 23's attention layouts (S23).
  S23="FLASHDEPTH_ATTENTION_BANKS=session23 FLASHDEPTH_ATTENTION_ROW_MAX=shuffle"
  NOPF="FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH=off"
  bf full-new X=1
  bf full-nopf $NOPF
  bf full-new2 X=1
  bf full-nopf2 $NOPF
  bl l-new X=1
  bl l-s23 $S23
  bl l-new2 X=1
  bl l-s23b $S23
  bf full-s23 $S23
  step mixed-models 120 X=1 -- node dist/test/kernels/kernel-check.js --mixed-model-only
  [[ ${REF:-0} == 1 ]] && step reference 110 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 13 ]]; then
  # Session 24's default for the 12-subgroup attention layout (ViT-L at 518², Full's cross-attentions) was chosen from
  # per-call times; here it runs on the card in the models, against session 23's layouts (S23).
  S23="FLASHDEPTH_ATTENTION_BANKS=session23 FLASHDEPTH_ATTENTION_ROW_MAX=shuffle"
  step check-default 60 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices --only "64-key stages of 16-key blocks, spread banks, row maxima by vote"
  step mixed-models 120 X=1 -- node dist/test/kernels/kernel-check.js --mixed-model-only
  bl l-new X=1
  bl l-s23 $S23
  bl l-new2 X=1
  bl l-s23b $S23
  bf full-new X=1
  bf full-s23 $S23
  step l-prof-warm 60 X=1 -- $B --config l --frames 3 --profile
  step l-prof 60 X=1 -- $B --config l --frames 3 --profile --json "$R/l-prof.json"
  step l-prof-s23 60 $S23 -- $B --config l --frames 3 --profile --json "$R/l-prof-s23.json"
  [[ ${REF:-0} == 1 ]] && step reference 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models s,l,full --items 3 --out "$R/ref.jsonl"
elif [[ $PART == 4 ]]; then
  # Session 20: the attention's workgroup-memory banks spread (score rows of blockK + 8 floats, softmax rows dealt so
  # that its reads and P stores are conflict-free), P's exponentials in f16, and the reference's per-kernel profile.
  [[ ${CHECK:-1} == 1 ]] && step check-tc 120 X=1 -- node dist/test/kernels/kernel-check.js --emulate-subgroup-matrices
  step att-sweep 200 FLASHDEPTH_SWEEP_ATTENTION_SHAPES="2K,teacher,L 518" FLASHDEPTH_SWEEP_ATTENTION_LAYOUTS="$SPREAD_LAYOUTS" \
    -- node dist/test/kernels/kernel-timing.js --attention-only
  bf full-def X=1
  bf full-spread "FLASHDEPTH_ATTENTION_LAYOUT=18,1,16,1,4,32/spread/dense"
  bf full-spread16 "FLASHDEPTH_ATTENTION_LAYOUT=18,1,16,1,4,32/spread/dense/exp16"
  step reference-prof 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models l,full --items 2 --profile 10 --out "$R/ref.jsonl"
  bf full-def2 X=1
  bf full-spread2 "FLASHDEPTH_ATTENTION_LAYOUT=18,1,16,1,4,32/spread/dense"
  step full-prof 90 X=1 -- $B --config full --frames 3 --profile --json "$R/full-prof.json"
elif [[ $PART == 5 ]]; then
  # Session 20's spread banks as the default (wave-fitted 18 subgroups in 16-key stages, the 12-subgroup layout in
  # 64-key stages) against session 19's layouts (FLASHDEPTH_ATTENTION_BANKS=session19), and the reference's Full
  # profile (item 0 is its warm-up).
  S19="FLASHDEPTH_ATTENTION_BANKS=session19"
  bf full-new X=1
  bf full-s19 $S19
  bf full-new2 X=1
  bf full-s192 $S19
  bl l-new X=1
  bl l-s19 $S19
  step reference-prof 150 PYTHONUNBUFFERED=1 -- python3 bench/reference/time_reference.py --models full --items 1 --profile 8 --out "$R/ref.jsonl"
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
