/**
 * Flash-style multi-head attention in one dispatch: softmax(q·kᵀ·scale)·v with an online softmax over blocks of keys
 * held in workgroup memory, so no score tensor exists outside registers (FlashAttention, Dao et al. 2022).
 *
 * Layout: q, k, v are [B, L, rowWidth] token rows; head h of a tensor is the channel range offset + h·Dh … + Dh
 * (PyTorch's head-major order), so the fused qkv output [B, N, 3C] can be passed as q, k and v with offsets 0, C, 2C
 * and no split or transpose. The output is [B, Lq, H·Dh], heads already merged.
 *
 * One workgroup = `blocks.q` query rows of one (batch, head); one thread = one query row, whose scaled q and running
 * output stay in registers. Per block of BLOCK_K keys the workgroup stages K and V in shared memory; each thread
 * computes its BLOCK_K scores, rescales its accumulator by exp(m_old − m_new) and adds p·V. Exponentials are exp2 with
 * log2(e) folded into the scale. Dispatch: [⌈Lq/BLOCK_Q⌉, H, B] (Lq up to 4.2 M rows before x passes 65 535).
 */
import type { WebGPUProgram } from './program.js';

/** Query rows (= invocations) per workgroup and keys per staged block. */
export interface FlashBlocks {
  q: number;
  k: number;
}

/**
 * The block shape for a problem size: 128 rows × 16-key blocks where that still gives at least MIN_WORKGROUPS
 * workgroups (the ViT-S student at 2K, 11 972 tokens × 6 heads: 14 ms against 17–29 ms with 64 × 32 on the H100,
 * test/kernels/kernel-timing.ts), else 64 × 32 so that small problems (ViT-S at 518², 1 370 tokens × 6 heads: 66
 * workgroups of 128 rows) still spread over the GPU's ~132 multiprocessors.
 */
export function flashBlocksFor(batch: number, lq: number, numHeads: number): FlashBlocks {
  return Math.ceil(lq / 128) * numHeads * batch >= MIN_WORKGROUPS ? { q: 128, k: 16 } : { q: 64, k: 32 };
}

const MIN_WORKGROUPS = 128;

export class FlashAttentionProgram implements WebGPUProgram {
  variableNames = ['Q', 'K', 'V'];
  variableComponents = [4, 4, 4];
  outputComponent = 4;
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [1], y: [2], z: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  /** Offsets in vec4 units; scale already multiplied by log2(e). */
  uniforms = 'qOffset : i32, kOffset : i32, vOffset : i32, scaleLog2e : f32,';
  private readonly dh4: number;
  private readonly blocks: FlashBlocks;

  constructor(batch: number, lq: number, numHeads: number, headDim: number, blocks: FlashBlocks = flashBlocksFor(batch, lq, numHeads)) {
    this.dh4 = headDim / 4;
    this.blocks = blocks;
    this.workgroupSize = [blocks.q, 1, 1];
    this.outputShape = [batch, lq, numHeads * headDim];
    this.dispatch = [Math.ceil(lq / blocks.q), numHeads, batch];
    this.shaderKey = `flashAttention_${headDim}_${blocks.q}_${blocks.k}`;
  }

  getUserCode(): string {
    const { q: blockQ, k: blockK } = this.blocks;
    const tile = blockK * this.dh4;
    // Loops have constant trip counts so drivers can unroll the Dh loops and keep q and o in registers. A thread's
    // scores live in workgroup memory (its own column of sTile, conflict-free) rather than a private array indexed by
    // the key loop, which a driver that does not unroll that loop would spill to local memory. (Fully unrolled WGSL
    // was tried: lavapipe's LLVM then takes minutes to compile it.)
    return `
      const BLOCK_Q : i32 = ${blockQ};
      const BLOCK_K : i32 = ${blockK};
      const DH4 : i32 = ${this.dh4};
      const MASKED : f32 = -3.0e38;
      var<workgroup> kTile : array<vec4<f32>, ${tile}>;
      var<workgroup> vTile : array<vec4<f32>, ${tile}>;
      var<workgroup> sTile : array<f32, ${blockK * blockQ}>;

      fn main() {
        let lq = uniforms.qShape.y;
        let lk = uniforms.kShape.y;
        let qStride = uniforms.qShape.z / 4;
        let kStride = uniforms.kShape.z / 4;
        let vStride = uniforms.vShape.z / 4;
        let outStride = uniforms.outShape.z / 4;
        let head = i32(workgroupId.y);
        let batch = i32(workgroupId.z);
        let t = i32(localId.x);
        let row = i32(workgroupId.x) * BLOCK_Q + t;
        // Rows past Lq still load and compute (on a clamped row) so that every thread reaches the barriers.
        let qBase = (batch * lq + min(row, lq - 1)) * qStride + uniforms.qOffset + head * DH4;
        var q : array<vec4<f32>, ${this.dh4}>;
        var o : array<vec4<f32>, ${this.dh4}>;
        for (var d = 0; d < DH4; d++) {
          q[d] = Q[qBase + d] * uniforms.scaleLog2e;
          o[d] = vec4<f32>(0.0);
        }
        var m = MASKED;
        var l = 0.0;
        let kBase = batch * lk * kStride + uniforms.kOffset + head * DH4;
        let vBase = batch * lk * vStride + uniforms.vOffset + head * DH4;
        for (var k0 = 0; k0 < lk; k0 += BLOCK_K) {
          workgroupBarrier();
          for (var i = t; i < BLOCK_K * DH4; i += BLOCK_Q) {
            let j = i / DH4;
            let d = i - j * DH4;
            let key = min(k0 + j, lk - 1);
            kTile[i] = K[kBase + key * kStride + d];
            vTile[i] = V[vBase + key * vStride + d];
          }
          workgroupBarrier();
          let valid = lk - k0;
          var tileMax = m;
          for (var j = 0; j < BLOCK_K; j++) {
            var acc = vec4<f32>(0.0);
            for (var d = 0; d < DH4; d++) {
              acc = fma(q[d], kTile[j * DH4 + d], acc);
            }
            let sj = select(MASKED, (acc.x + acc.y) + (acc.z + acc.w), j < valid);
            sTile[j * BLOCK_Q + t] = sj;
            tileMax = max(tileMax, sj);
          }
          let correction = exp2(m - tileMax);
          l = l * correction;
          for (var d = 0; d < DH4; d++) {
            o[d] = o[d] * correction;
          }
          for (var j = 0; j < BLOCK_K; j++) {
            let p = exp2(sTile[j * BLOCK_Q + t] - tileMax);
            l = l + p;
            for (var d = 0; d < DH4; d++) {
              o[d] = fma(vec4<f32>(p), vTile[j * DH4 + d], o[d]);
            }
          }
          m = tileMax;
        }
        if (row < lq) {
          let outBase = (batch * lq + row) * outStride + head * DH4;
          let inv = 1.0 / l;
          for (var d = 0; d < DH4; d++) {
            result[outBase + d] = o[d] * inv;
          }
        }
      }
    `;
  }
}
