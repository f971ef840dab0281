/**
 * Error bounds of the kernel checks, shared by the test (kernels.test.ts) and the GPU-host script (kernel-check.ts,
 * which flags the cases outside them), relative to max|ref| of the fp32 stock ops.
 */

/** f16 operands (11-bit significands) with f32 accumulation: errors of a few 1e-4 relative; bf16 would be ~8× larger. */
export const MIXED_RELATIVE_BOUND = 5e-3;
