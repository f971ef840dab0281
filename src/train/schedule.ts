/**
 * The learning-rate schedule of the reference (spec §5.2): `LambdaLR` with a linear warm-up from 1e-4 to 1 over
 * `warmup_steps` optimiser steps, then constant (no decay). The same factor multiplies every group's base lr.
 */

/** The warm-up's starting factor. */
export const WARMUP_START_FACTOR = 1e-4;

/**
 * The lr factor of optimiser step `step` (0-based, counting optimiser steps, not micro-steps):
 * 1e-4 + (1 − 1e-4)·step/(warmup − 1) for step < warmup, 1 afterwards.
 */
export function lrFactor(step: number, warmupSteps: number): number {
  if (warmupSteps <= 1 || step >= warmupSteps) return 1;
  return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * (step / (warmupSteps - 1));
}
