/**
 * The precision switch and the plumbing of the tensor-core path that can be checked without a GPU: the WGSL
 * directive hoisting and binding retyping our kernels rely on, the tensor-core attention's choices and padding, the
 * fp32 fallback of `--precision mixed` on backends without tensor cores, and the linear-layer epilogues (GELU,
 * LayerScale residual) on the ops path.
 */
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs-core';
import { hoistDirectives, retypeBindings } from '../../src/backend/webgpu.js';
import { expectSwitch, withEnvRestored } from '../helpers/env.js';
import {
  SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, WAVE_FITTED_TC_ATTENTION_LAYOUT, checkTcAttentionLayout, selfAttentionPlanes, tcAttentionWaveCost, tensorCoreAttentionLayout, tensorCoreAttentionSupports,
} from '../../src/kernels/tc-attention.js';
import {
  DEFAULT_TC_ATTENTION_LAYOUT, EIGHT_SUBGROUP_TC_ATTENTION_LAYOUT, SESSION11_TC_ATTENTION_LAYOUT, SESSION12_TC_ATTENTION_LAYOUT, TensorCoreAttentionProgram, bankWavefronts, packedPlanes, softmaxRowOrder,
  tcAttentionWorkgroupBytes, tcRowsPerWorkgroup, type TensorCoreAttentionLayout,
} from '../../src/kernels/tc-attention_webgpu.js';
import { packedA, packedB } from '../../src/kernels/tc-matmul.js';
import { mixedMlp, mixedMlpSupports, mixedSelfAttentionSupports } from '../../src/kernels/mixed-matmul.js';
import { attentionBranch, attentionLayoutOverride, attentionRowMax, convBlock, layerNormRowLanes, layerNormSums, mambaChunkTokensOverride, matMulEpilogueIo, matMulEpilogueScratch, matMulEpilogueSync, matMulLoadAhead, matMulResidualPrefetch, patchNormFusion, rcuFusion, tileElement } from '../../src/kernels/mode.js';
import { emulateSubgroupMatrices } from '../helpers/subgroup-matrix-emulation.js';
import { MambaChunkStateProgram, MambaScanProgram, scanChunks, scanLanes } from '../../src/kernels/mamba-scan_webgpu.js';
import {
  DEFAULT_TC_MATMUL_LAYOUT, HEAD_PLANES_UNIFORMS, PackF16Program, SINGLE_BUFFERED_TC_MATMUL_LAYOUT, SMALL_TC_MATMUL_LAYOUT, SUBGROUP_SCRATCH_SYNC, SplitKReduceLayerNormProgram, SplitKReduceProgram, TensorCoreMatMulProgram,
  BIG_BLOCK_SPEED, BIG_TC_MATMUL_LAYOUTS, checkTcMatMulLayout, narrowConvBlock, narrowConvLayout, tcMatMulSlicesPerSplit, tensorCoreConvLayout, tcMatMulSplits, tcMatMulWaveCost, tcMatMulWorkgroupBytes, tensorCoreMatMulLayout,
  WAVE_FITTED_TC_MATMUL_LAYOUTS, type MatMulEpilogue, type TensorCoreMatMulLayout,
} from '../../src/kernels/tc-matmul_webgpu.js';
import { layerNormLanes, LayerNormPackF16Program, LayerNormProgram } from '../../src/kernels/layer-norm_webgpu.js';
import { applyPrecision, precisionMode, setPrecision, useTensorCores } from '../../src/kernels/index.js';
import { addScaled, gelu, linear } from '../../src/models/ops.js';
import { useTestBackend } from '../helpers/backend.js';
import { ConfigError, ShapeError } from '../../src/errors.js';

/** `body` with the tensor-core linear layers' blocks in 64-column subgroups (the block, split and wave policies' tests). */
function withWideSubgroups(body: () => void): void {
  withEnvRestored('FLASHDEPTH_TC_MATMUL_SUBGROUPS', () => {
    process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'] = 'wide';
    body();
  });
}

describe('kernel mode and precision', () => {
  before(useTestBackend);
  afterEach(() => setPrecision('fp32'));

  it('hoists enable and diagnostic directives above the tfjs header, once each', () => {
    const code = 'struct Uniforms { x : f32 };\nvar<private> a : u32;\n  enable f16;\nenable subgroups;\n  enable f16;\ndiagnostic(off, derivative_uniformity);\nfn main() {}\n';
    const out = hoistDirectives(code);
    const lines = out.split('\n');
    expect(lines.slice(0, 3)).to.deep.equal(['enable f16;', 'enable subgroups;', 'diagnostic(off, derivative_uniformity);']);
    expect(out.match(/enable f16;/g)).to.have.length(1);
    expect(out).to.contain('struct Uniforms { x : f32 };\nvar<private> a : u32;');
    expect(out).to.contain('fn main() {}');
    expect(hoistDirectives('fn main() {}')).to.equal('fn main() {}');
  });

  it('retypes a marked tfjs binding (f16 data in an int32 tensor) and leaves the others alone', () => {
    const header = '@group(0) @binding(0) var<storage, read_write> result: array<f32>;\n@group(0) @binding(1) var<storage, read> P: array<i32>;\n'
      + '@group(0) @binding(2) var<storage, read> Q: array<vec4<f32>>;\n';
    const out = retypeBindings(`${header}// flashdepth:bind P array<f16>\nfn main() {}\n`);
    expect(out).to.contain('var<storage, read> P: array<f16>;');
    expect(out).to.contain('var<storage, read_write> result: array<f32>;');
    expect(out).to.contain('var<storage, read> Q: array<vec4<f32>>;');
    expect(retypeBindings(header)).to.equal(header);
  });

  it('makes a marked input binding writable (a second output) and leaves the others read-only', () => {
    const header = '@group(0) @binding(0) var<storage, read_write> result: array<f32>;\n@group(0) @binding(1) var<storage, read> Packed: array<i32>;\n'
      + '@group(0) @binding(2) var<storage, read> PackedRows: array<i32>;\n';
    const out = retypeBindings(`${header}// flashdepth:writes Packed\nfn main() {}\n`);
    expect(out).to.contain('var<storage, read_write> Packed: array<i32>;');
    expect(out).to.contain('var<storage, read> PackedRows: array<i32>;');
    expect(out.match(/read_write/g)).to.have.length(2);
  });

  it('tensor-core attention: 12 subgroups of 1 tile where 48 KiB of workgroup memory allow, ≤ 31 KiB layouts otherwise', () => {
    expect(tensorCoreAttentionSupports(64)).to.equal(true);
    expect(tensorCoreAttentionSupports(40)).to.equal(false); // not whole 16-channel tiles
    expect(tensorCoreAttentionLayout(40, 49152)).to.equal(null);
    expect(tensorCoreAttentionLayout(64, 49152)).to.deep.equal({ subgroups: 12, tiles: 1, blockK: 16, stageK: 64, kvBuffers: 1, oSplit: 4, spreadBanks: true, rowMax: 'vote', scratchSync: 'subgroup' });
    // One buffer of K and V (64 keys, rows padded to 72 halves), per-subgroup scratch of max(1 tile of 16-key scores,
    // a quarter accumulator tile: 16 rows of 16 + 4 floats alike) and P as f16: 192 query rows per workgroup; the
    // rescale flags too where barriers order the scratch. Spread banks: score rows of 16 + 8 floats.
    expect(tcAttentionWorkgroupBytes(SESSION12_TC_ATTENTION_LAYOUT, 64)).to.equal(2 * 64 * 72 * 2 + 12 * 16 * 20 * 4 + 12 * 16 * 24 * 2);
    expect(tcAttentionWorkgroupBytes({ ...SESSION12_TC_ATTENTION_LAYOUT, scratchSync: 'workgroup' }, 64)).to.equal(2 * 64 * 72 * 2 + 12 * 16 * 20 * 4 + 12 * 16 * 24 * 2 + 12 * 4);
    expect(tcAttentionWorkgroupBytes(DEFAULT_TC_ATTENTION_LAYOUT, 64)).to.equal(2 * 64 * 72 * 2 + 12 * 16 * 24 * 4 + 12 * 16 * 24 * 2);
    expect({ ...SESSION12_TC_ATTENTION_LAYOUT, spreadBanks: true, rowMax: 'vote' }).to.deep.equal(DEFAULT_TC_ATTENTION_LAYOUT);
    withEnvRestored('FLASHDEPTH_ATTENTION_BANKS', () => {
      // Session 23's: the default without spread banks, the wave-fitted layout with them; session 19's: neither.
      process.env['FLASHDEPTH_ATTENTION_BANKS'] = 'session23';
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 11973, planes: 6 })).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 1370, planes: 16 })).to.deep.equal({ ...SESSION12_TC_ATTENTION_LAYOUT, rowMax: 'vote', scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_BANKS'] = 'session19';
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 11973, planes: 6 })).to.deep.equal({ ...SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 1370, planes: 16 })).to.deep.equal({ ...SESSION12_TC_ATTENTION_LAYOUT, rowMax: 'vote', scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_BANKS'] = 'wide';
      expect(() => tensorCoreAttentionLayout(64, 49152)).to.throw('Expected one of spread, session23, session19 for FLASHDEPTH_ATTENTION_BANKS but received "wide"');
    });
    // Session 11's: two buffers of 16 keys, accumulators in halves (16 rows of 32 + 4 floats).
    expect(tcAttentionWorkgroupBytes(SESSION11_TC_ATTENTION_LAYOUT, 64)).to.equal(2 * 2 * 16 * 72 * 2 + 12 * 16 * 36 * 4 + 12 * 16 * 24 * 2);
    expect(tcRowsPerWorkgroup(DEFAULT_TC_ATTENTION_LAYOUT)).to.equal(192);
    // Session 10's 8 subgroups of 32-key blocks: 128 rows in 47 KiB.
    expect(tcAttentionWorkgroupBytes(EIGHT_SUBGROUP_TC_ATTENTION_LAYOUT, 64)).to.equal(2 * 2 * 32 * 72 * 2 + 8 * 16 * 36 * 4 + 8 * 16 * 40 * 2);
    // The whole accumulator tile at once (16 rows of 64 + 4 floats) needs more scratch than 2 tiles of scores.
    expect(tcAttentionWorkgroupBytes({ subgroups: 4, tiles: 2, blockK: 32 }, 64)).to.equal(4 * 32 * 72 * 2 + 4 * 1152 * 4 + 4 * 2 * 16 * 40 * 2);
    // Less workgroup memory (software Vulkan's 32 KiB): one K/V buffer, then 16-key blocks; below 21 KiB none fits
    // (the fp32 kernel runs).
    expect(tensorCoreAttentionLayout(64, 32768)).to.deep.equal({ subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 2, scratchSync: 'subgroup' });
    expect(tcAttentionWorkgroupBytes(tensorCoreAttentionLayout(64, 32768)!, 64)).to.equal(32 * 72 * 2 * 2 + 4 * 16 * 36 * 4 + 4 * 16 * 40 * 2);
    const small = tensorCoreAttentionLayout(64, 22000);
    expect(small).to.deep.equal({ subgroups: 4, tiles: 1, blockK: 16, kvBuffers: 2, oSplit: 2, scratchSync: 'subgroup' });
    expect(tcAttentionWorkgroupBytes(small!, 64)).to.be.at.most(22000);
    expect(tensorCoreAttentionLayout(64, 16384)).to.equal(null);
    expect(tensorCoreAttentionSupports(128)).to.equal(false); // only the head sizes the kernel checks cover (16–64)
    expect(tensorCoreAttentionLayout(128, 49152)).to.equal(null);
  });

  it('tensor-core attention: grids of under 96 workgroups of 192 query rows take the 64-row layout (every problem goes to the tensor cores)', () => {
    const rows64 = { subgroups: 4, tiles: 1, blockK: 32, kvBuffers: 1, oSplit: 2, scratchSync: 'subgroup' };
    const rows192 = { ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' };
    expect(tensorCoreAttentionLayout(64, 49152, { rows: 1370, planes: 6 })).to.deep.equal(rows64); // ViT-S at 518²: 8 × 6
    expect(tensorCoreAttentionLayout(64, 49152, { rows: 1370, planes: 16 })).to.deep.equal(rows192); // ViT-L at 518²: 8 × 16
    // The Full teacher (12 × 16 = 192 workgroups) and the 2K student (63 × 6): the wave-fitted layout by default (next test).
    expect(tensorCoreAttentionLayout(64, 49152, { rows: 2171, planes: 16 })).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
    expect(tensorCoreAttentionLayout(64, 49152, { rows: 11973, planes: 6 })).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
    withEnvRestored('FLASHDEPTH_ATTENTION_WAVES', () => {
      process.env['FLASHDEPTH_ATTENTION_WAVES'] = 'off';
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 11973, planes: 6 })).to.deep.equal(rows192);
    });
    // Where the 64-row layout is already the first that fits (32 KiB), a small grid keeps it.
    expect(tensorCoreAttentionLayout(64, 32768, { rows: 1370, planes: 6 })).to.deep.equal(rows64);
    expect(tensorCoreAttentionLayout(40, 49152, { rows: 1370, planes: 6 })).to.equal(null);
  });

  it('tensor-core attention: FLASHDEPTH_ATTENTION_WAVES=fit (the default) gives grids of more than a wave 18 subgroups of 1 tile where those take no more whole waves, off the 192-row layout; another value is a one-line error', () => {
    const fitted = { ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' };
    const teacher = { rows: 2171, planes: 16 };
    // The Full teacher: 12 × 16 = 192 workgroups of 192 rows (two waves) against 8 × 16 = 128 of 288 (one).
    expect([tcAttentionWaveCost(DEFAULT_TC_ATTENTION_LAYOUT, teacher), tcAttentionWaveCost(WAVE_FITTED_TC_ATTENTION_LAYOUT, teacher)]).to.deep.equal([384, 288]);
    withEnvRestored('FLASHDEPTH_ATTENTION_WAVES', () => {
      process.env['FLASHDEPTH_ATTENTION_WAVES'] = 'fit';
      expect(tensorCoreAttentionLayout(64, 49152, teacher)).to.deep.equal(fitted);
      // The 2K student: 378 workgroups, 3 waves of 192 rows, or 252, 2 of 288 — a tie, which goes to the 18 warps.
      const student = { rows: 11973, planes: 6 };
      expect([tcAttentionWaveCost(DEFAULT_TC_ATTENTION_LAYOUT, student), tcAttentionWaveCost(WAVE_FITTED_TC_ATTENTION_LAYOUT, student)]).to.deep.equal([576, 576]);
      expect(tensorCoreAttentionLayout(64, 49152, student)).to.deep.equal(fitted);
      // ViT-L at 518²: one wave of 192 rows against one of 288 keeps the default.
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 1371, planes: 16 })).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      // Software Vulkan's 32 KiB takes neither 45 KiB layout.
      expect(tensorCoreAttentionLayout(64, 32768, teacher)?.subgroups).to.equal(4);
      withEnvRestored('FLASHDEPTH_ATTENTION_LAYOUT', () => {
        process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,1,4';
        expect(tensorCoreAttentionLayout(64, 49152, teacher)).to.deep.equal({ subgroups: 12, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 4, scratchSync: 'subgroup' });
      });
      process.env['FLASHDEPTH_ATTENTION_WAVES'] = 'off';
      expect(tensorCoreAttentionLayout(64, 49152, teacher)).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_WAVES'] = 'all';
      expect(() => tensorCoreAttentionLayout(64, 49152, teacher)).to.throw('Expected one of off, fit for FLASHDEPTH_ATTENTION_WAVES but received "all"');
    });
    withEnvRestored('FLASHDEPTH_ATTENTION_WAVES', () => {
      delete process.env['FLASHDEPTH_ATTENTION_WAVES'];
      expect(tensorCoreAttentionLayout(64, 49152, teacher)).to.deep.equal(fitted);
    });
  });

  it('tensor-core attention: FLASHDEPTH_ATTENTION_SYNC=workgroup gives every chosen layout barrier-ordered scratch; another value is a one-line error', () => {
    withEnvRestored('FLASHDEPTH_ATTENTION_SYNC', () => {
      process.env['FLASHDEPTH_ATTENTION_SYNC'] = 'workgroup';
      expect(tensorCoreAttentionLayout(64, 49152)).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'workgroup' });
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 1370, planes: 16 })?.scratchSync).to.equal('workgroup');
      process.env['FLASHDEPTH_ATTENTION_SYNC'] = 'warp';
      expect(() => tensorCoreAttentionLayout(64, 49152)).to.throw('Expected one of subgroup, workgroup for FLASHDEPTH_ATTENTION_SYNC but received "warp"');
    });
  });

  it('tensor-core matmul: 128×128 blocks where they fill the GPU or half a wave of them, 64×64 where a wave of those, else K split; single-buffered where workgroup memory is short, A converted in the kernel for small products, operands padded', () => {
    withWideSubgroups(() => {
      // The 128-row blocks' policy: FLASHDEPTH_TC_MATMUL_WAVES=off (the FLASHDEPTH_TC_MATMUL_WAVES test covers 'fit', the default).
      withEnvRestored('FLASHDEPTH_TC_MATMUL_WAVES', () => {
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'off';
        // ViT-L fc1 at 518²: 11 × 32 large blocks, packed A; fc2 and proj: only 11 × 8, unsplit (half a wave of blocks);
        // with FLASHDEPTH_TC_MATMUL_SPLIT=fill (sessions 9–12) K split in 3 (264 workgroups).
        expect(tensorCoreMatMulLayout(1370, 4096, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        expect(tensorCoreMatMulLayout(1370, 1024, 4096, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        expect(tensorCoreMatMulLayout(1370, 1024, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        expect(tensorCoreMatMulLayout(1370, 1024, 4096, 49152, 'double', 'fill')).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 3 });
        // The Full teacher's proj at 868×490 (17 × 8 blocks): unsplit ('fill': 2 splits); ViT-S fc2 at 518² (11 × 3 large
        // blocks, 22 × 6 small ones): small blocks ('fill': 6 splits); a 3×3 conv at 19² (3 × 2 blocks, 6 × 4 small ones,
        // K = 2304): 9 splits, at least 8 slices each.
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152, 'double', 'fill')).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 2 });
        expect(tensorCoreMatMulLayout(1370, 384, 1536, 49152)).to.deep.equal({ ...SMALL_TC_MATMUL_LAYOUT, convertA: true });
        expect(tensorCoreMatMulLayout(1370, 384, 1536, 49152, 'double', 'fill')).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 6, convertA: true });
        expect(tensorCoreMatMulLayout(361, 256, 2304, 49152)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 9, convertA: true });
        // ViT-S fc1 at 518² (8·10⁸ multiply-adds): 132 blocks but K = 384 too shallow to split: small blocks, A read as
        // f32 (no pack dispatch); the 2K student's qkv: large.
        expect(tensorCoreMatMulLayout(1370, 1536, 384, 49152)).to.deep.equal({ ...SMALL_TC_MATMUL_LAYOUT, convertA: true });
        // The DPT head's convolution to 32 channels at 518²: 128×128 blocks (loading A bounds it; narrower blocks were slower).
        expect(tensorCoreMatMulLayout(268324, 32, 576, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        // Splits that would get no slices are dropped: 12 slices asked in 5 splits → 3 each, 4 splits.
        expect([tcMatMulSlicesPerSplit(384, { ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 5 }), tcMatMulSplits(384, { ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 5 })]).to.deep.equal([3, 4]);
        expect([tcMatMulSlicesPerSplit(384, DEFAULT_TC_MATMUL_LAYOUT), tcMatMulSplits(384, DEFAULT_TC_MATMUL_LAYOUT)]).to.deep.equal([12, 1]);
        // An explicit layout that cannot run here is a one-line error, not a Dawn validation failure.
        expect(() => checkTcMatMulLayout(DEFAULT_TC_MATMUL_LAYOUT, 32768))
          .to.throw(ConfigError, /^tensor-core matmul layout \(4×2 subgroups of 2×4 tiles\): needs 46080 bytes of workgroup memory, the device allows 32768$/);
        expect(() => checkTcMatMulLayout({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 2.5 }, 49152)).to.throw(ConfigError, /splitK must be a whole number ≥ 1, got 2\.5$/);
        expect(() => checkTcMatMulLayout({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 3 }, 49152)).to.not.throw();
        expect(() => checkTcAttentionLayout(DEFAULT_TC_ATTENTION_LAYOUT, 64, 32768))
          .to.throw(ConfigError, /^tensor-core attention layout \(12 subgroups of 1 tiles, 16-key blocks\): needs \d+ bytes of workgroup memory for heads of 64, the device allows 32768$/);
        expect(tensorCoreMatMulLayout(11972, 1152, 384, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        // Software Vulkan's 32 KiB: the large block single-buffered (46 KiB → 27 KiB).
        expect(tensorCoreMatMulLayout(11972, 1152, 384, 32768)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, buffers: 1 });
        expect(tcMatMulWorkgroupBytes(DEFAULT_TC_MATMUL_LAYOUT)).to.equal(2 * (128 * 40 + 32 * 136) * 2 + 8 * 256 * 4);
        expect(tcMatMulWorkgroupBytes({ ...DEFAULT_TC_MATMUL_LAYOUT, buffers: 1 })).to.equal((128 * 40 + 32 * 136) * 2 + 8 * 256 * 4);
        expect(tcMatMulWorkgroupBytes({ ...SMALL_TC_MATMUL_LAYOUT, buffers: 1, sliceK: 64 })).to.equal((64 * 72 + 64 * 72) * 2 + 4 * 256 * 4);
        // Rows to whole 16-row tiles (at least 64), K to whole 32-deep slices, columns to 16 (at least 64).
        expect(packedA(1370, 588)).to.deep.equal({ rows: 1370, cols: 588, rowsPad: 1376, colsPad: 608 });
        expect(packedB(588, 1024)).to.deep.equal({ rows: 588, cols: 1024, rowsPad: 608, colsPad: 1024 });
        expect(packedB(52, 20)).to.deep.equal({ rows: 52, cols: 20, rowsPad: 64, colsPad: 64 });
      });
    });
  });

  it('tensor-core matmul: FLASHDEPTH_TC_MATMUL_BLOCK stages the 128×128 block in one buffer or two 16-deep ones; another value is a one-line error', () => {
    withWideSubgroups(() => {
      // The 128-row blocks' policy: FLASHDEPTH_TC_MATMUL_WAVES=off (the FLASHDEPTH_TC_MATMUL_WAVES test covers 'fit', the default).
      withEnvRestored('FLASHDEPTH_TC_MATMUL_WAVES', () => {
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'off';
        withEnvRestored('FLASHDEPTH_TC_MATMUL_BLOCK', () => {
          process.env['FLASHDEPTH_TC_MATMUL_BLOCK'] = 'double16';
          expect(tensorCoreMatMulLayout(1370, 4096, 1024, 49152)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16 });
          expect(tensorCoreMatMulLayout(1370, 1024, 4096, 49152)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16 });
          expect(tensorCoreMatMulLayout(1370, 1024, 4096, 49152, 'double16', 'fill')).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16, splitK: 3 });
          // 29 KiB: two per H100 multiprocessor, and within software Vulkan's 32 KiB.
          expect(tcMatMulWorkgroupBytes({ ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16 })).to.equal(2 * (128 * 24 + 16 * 136) * 2 + 8 * 256 * 4);
          expect(tensorCoreMatMulLayout(1370, 4096, 1024, 32768)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, sliceK: 16 });
          process.env['FLASHDEPTH_TC_MATMUL_BLOCK'] = 'single';
          expect(tensorCoreMatMulLayout(1370, 4096, 1024, 49152)).to.deep.equal(SINGLE_BUFFERED_TC_MATMUL_LAYOUT);
          process.env['FLASHDEPTH_TC_MATMUL_BLOCK'] = 'triple';
          expect(() => tensorCoreMatMulLayout(1370, 4096, 1024, 49152)).to.throw('Expected one of double, single, double16 for FLASHDEPTH_TC_MATMUL_BLOCK but received "triple"');
        });
      });
    });
  });

  it('tensor-core matmul: FLASHDEPTH_TC_MATMUL_SPLIT=fill splits K until 256 workgroups, as sessions 9–12 did; another value is a one-line error', () => {
    withWideSubgroups(() => {
      // The 128-row blocks' policy: FLASHDEPTH_TC_MATMUL_WAVES=off (the FLASHDEPTH_TC_MATMUL_WAVES test covers 'fit', the default).
      withEnvRestored('FLASHDEPTH_TC_MATMUL_WAVES', () => {
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'off';
        withEnvRestored('FLASHDEPTH_TC_MATMUL_SPLIT', () => {
          process.env['FLASHDEPTH_TC_MATMUL_SPLIT'] = 'fill';
          expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 2 });
          process.env['FLASHDEPTH_TC_MATMUL_SPLIT'] = 'few';
          expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
          process.env['FLASHDEPTH_TC_MATMUL_SPLIT'] = 'always';
          expect(() => tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.throw('Expected one of few, fill for FLASHDEPTH_TC_MATMUL_SPLIT but received "always"');
        });
      });
    });
  });

  it('tensor-core matmul: FLASHDEPTH_TC_MATMUL_WAVES=fit (the default) gives unsplit products 144- or 96-row blocks where those take at most 90% of the time in whole waves, fitAll wherever they take less; another value is a one-line error', () => {
    withWideSubgroups(() => {
      const [rows144, rows96] = WAVE_FITTED_TC_MATMUL_LAYOUTS as [TensorCoreMatMulLayout, TensorCoreMatMulLayout];
      // 45.5 and 38 KiB double-buffered: one workgroup per multiprocessor, like the 128×128 block.
      expect(tcMatMulWorkgroupBytes(rows144)).to.equal(2 * (144 * 40 + 32 * 136) * 2 + 6 * 256 * 4);
      expect(tcMatMulWorkgroupBytes(rows96)).to.equal(2 * (96 * 40 + 32 * 136) * 2 + 6 * 256 * 4);
      // The Full teacher's proj / fc2: 17 × 8 = 136 blocks of 128 rows, two waves (2 × 8 block-rows) against one of
      // 16 × 8 blocks of 144 rows (9).
      expect([tcMatMulWaveCost(2171, 1024, DEFAULT_TC_MATMUL_LAYOUT), tcMatMulWaveCost(2171, 1024, rows144), tcMatMulWaveCost(2171, 1024, rows96)]).to.deep.equal([16, 9, 12]);
      withEnvRestored('FLASHDEPTH_TC_MATMUL_WAVES', () => {
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'fit';
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.deep.equal(rows144);
        expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(rows144);
        // Its qkv (17 × 24 blocks: 4 waves of 8 against 3 of 9) and fc1 (5 × 8 against 4 × 9: 90%, since session 25).
        expect(tensorCoreMatMulLayout(2171, 3072, 1024, 49152)).to.deep.equal(rows144);
        expect(tensorCoreMatMulLayout(2171, 4096, 1024, 49152)).to.deep.equal(rows144);
        // ViT-L's proj / fc2 at 518²: 88 blocks of 128 rows or 120 of 96 are one wave either way, the second shorter.
        expect(tensorCoreMatMulLayout(1371, 1024, 4096, 49152)).to.deep.equal(rows96);
        // Its qkv (264 blocks: exactly two waves) and fc1 (352: 3 × 8; 96 rows: 4 × 6, not under 90% of it) keep 128 rows.
        expect(tensorCoreMatMulLayout(1371, 3072, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        expect(tensorCoreMatMulLayout(1371, 4096, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        // The 2K student's proj (282 blocks: 3 waves of 8; 252 of 144 rows: 2 of 9), its qkv (7 × 8 against 6 × 9: under 10% less) not.
        expect(tensorCoreMatMulLayout(11973, 384, 384, 49152)).to.deep.equal(rows144);
        expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        // Split or small-block products stay as they were; a device short of 45.5 KiB gets the fitted block single-buffered.
        expect(tensorCoreMatMulLayout(1370, 384, 1536, 49152)).to.deep.equal({ ...SMALL_TC_MATMUL_LAYOUT, convertA: true });
        expect(tensorCoreMatMulLayout(361, 256, 2304, 49152)).to.deep.equal({ ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 9, convertA: true });
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 32768)).to.deep.equal({ ...rows144, buffers: 1 });
        delete process.env['FLASHDEPTH_TC_MATMUL_WAVES'];
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.deep.equal(rows144);
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'off';
        expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'yes';
        expect(() => tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.throw('Expected one of off, fit, fitAll for FLASHDEPTH_TC_MATMUL_WAVES but received "yes"');
        // 'fitAll': wherever the fitted block's waves take less time at all — the 2K student's qkv (6 × 9 against 7 × 8)
        // too; ViT-L's fc1 (4 × 6 against 3 × 8, equal) not.
        process.env['FLASHDEPTH_TC_MATMUL_WAVES'] = 'fitAll';
        expect(tensorCoreMatMulLayout(2171, 4096, 1024, 49152)).to.deep.equal(rows144);
        expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(rows144);
        expect(tensorCoreMatMulLayout(1371, 4096, 1024, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
      });
    });
  });

  it('tensor-core matmul: FLASHDEPTH_TC_MATMUL_SUBGROUPS=deep (the default) or many doubles the large blocks\' subgroups at half their width (deep: in products ≥ 1024 deep), single-buffered where double buffers do not fit; small blocks keep theirs; another value is a one-line error', () => {
    const [rows144, rows96] = WAVE_FITTED_TC_MATMUL_LAYOUTS as [TensorCoreMatMulLayout, TensorCoreMatMulLayout];
    // Twice the subgroups, 32 columns wide: 144 rows in 3 × 4 of 48×32, 128 rows in 4 × 4 of 32×32, both single-buffered.
    const rows144Many: TensorCoreMatMulLayout = { subgroups: { rows: 3, cols: 4 }, tiles: { rows: 3, cols: 2 }, buffers: 1 };
    const rows128Many: TensorCoreMatMulLayout = { subgroups: { rows: 4, cols: 4 }, tiles: { rows: 2, cols: 2 }, buffers: 1 };
    withEnvRestored('FLASHDEPTH_TC_MATMUL_SUBGROUPS', () => {
      process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'] = 'many';
      // The Full teacher's fc2: 144 rows in 3 × 4 subgroups of 48×32; double-buffered it would take 52 736 bytes.
      expect(tcMatMulWorkgroupBytes({ ...rows144Many, buffers: 2 })).to.equal(2 * (144 * 40 + 32 * 136) * 2 + 12 * 256 * 4);
      expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(rows144Many);
      // 96 rows in 12 subgroups still fit double-buffered (45 056 bytes); 128×128 in 16 subgroups do not.
      expect(tensorCoreMatMulLayout(1371, 1024, 4096, 49152)).to.deep.equal({ ...rows96, subgroups: { rows: 3, cols: 4 }, tiles: { rows: 2, cols: 2 } });
      // ViT-L's fc1 at 518² keeps 128-row blocks; the Full teacher's fc1 takes 144 rows since session 25.
      expect(tensorCoreMatMulLayout(1371, 4096, 1024, 49152)).to.deep.equal(rows128Many);
      expect(tensorCoreMatMulLayout(2171, 4096, 1024, 49152)).to.deep.equal(rows144Many);
      // Split products too; the 64×64 block (subgroups 32 wide already) as it was.
      expect(tensorCoreMatMulLayout(361, 256, 2304, 49152)).to.deep.equal({ ...rows128Many, splitK: 9, convertA: true });
      expect(tensorCoreMatMulLayout(1370, 384, 1536, 49152)).to.deep.equal({ ...SMALL_TC_MATMUL_LAYOUT, convertA: true });
      // A device whose workgroup memory takes neither form keeps the wide subgroups.
      expect(tensorCoreMatMulLayout(1371, 4096, 1024, 32768)).to.deep.equal(SINGLE_BUFFERED_TC_MATMUL_LAYOUT);
      // 'deep': only products at least 1024 deep (the 2K student's qkv, K = 384, keeps 8 subgroups; its fc2, K = 1536, takes 12).
      process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'] = 'deep';
      expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(rows144Many);
      expect(tensorCoreMatMulLayout(1371, 4096, 1024, 49152)).to.deep.equal(rows128Many);
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
      expect(tensorCoreMatMulLayout(11973, 384, 1536, 49152)).to.deep.equal(rows144Many);
      // 'deep' is the default; 'wide' is sessions 5–17's 64-column subgroups everywhere.
      delete process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'];
      expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(rows144Many);
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
      process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'] = 'wide';
      expect(tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.deep.equal(rows144);
      process.env['FLASHDEPTH_TC_MATMUL_SUBGROUPS'] = 'more';
      expect(() => tensorCoreMatMulLayout(2171, 1024, 4096, 49152)).to.throw('Expected one of wide, many, deep for FLASHDEPTH_TC_MATMUL_SUBGROUPS but received "more"');
    });
  });

  it('tensor-core matmul: FLASHDEPTH_TC_MATMUL_BIG_BLOCK=256x128 or 128x256 gives unsplit linear layers 8 subgroups of 64×64 where their whole waves are predicted faster; convolutions, split and small products keep theirs; off is the default; another value is a one-line error', () => {
    const tall = BIG_TC_MATMUL_LAYOUTS['256x128'];
    const wide = BIG_TC_MATMUL_LAYOUTS['128x256'];
    // One 32-deep buffer per operand and 8 scratch tiles: 36.5 KiB either way.
    expect(tcMatMulWorkgroupBytes(tall)).to.equal((256 * 40 + 32 * 136) * 2 + 8 * 256 * 4);
    expect(tcMatMulWorkgroupBytes(wide)).to.equal((128 * 40 + 32 * 264) * 2 + 8 * 256 * 4);
    // Wave costs in 16×128 block-rows: the 2K student's qkv in 256×128 blocks, 47 × 9 = 423 (4 waves of 16), against
    // 84 × 9 = 756 blocks of 144 rows (6 waves of 9).
    expect(tcMatMulWaveCost(11973, 1152, tall)).to.equal(64);
    expect(tcMatMulWaveCost(11973, 1152, tall) * BIG_BLOCK_SPEED).to.be.below(tcMatMulWaveCost(11973, 1152, WAVE_FITTED_TC_MATMUL_LAYOUTS[0]!));
    withEnvRestored('FLASHDEPTH_TC_MATMUL_BIG_BLOCK', () => {
      process.env['FLASHDEPTH_TC_MATMUL_BIG_BLOCK'] = '256x128';
      // The student's qkv and fc1, the teacher's qkv and fc1 (K = 1024: instead of the deep block's 16 subgroups).
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(tall);
      expect(tensorCoreMatMulLayout(11973, 1536, 384, 49152)).to.deep.equal(tall);
      expect(tensorCoreMatMulLayout(2171, 3072, 1024, 49152)).to.deep.equal(tall);
      expect(tensorCoreMatMulLayout(2171, 4096, 1024, 49152)).to.deep.equal(tall);
      // 384 or 1024 columns: 141 blocks (a second wave of 9) or 72 (half a wave) keep the wave-fitted 144 rows.
      const usual = (m: number, n: number, k: number, limit = 49152) => tensorCoreMatMulLayout(m, n, k, limit, undefined, undefined, undefined, undefined, 'off');
      expect(usual(11973, 384, 384).subgroups.rows).to.equal(3);
      expect(tensorCoreMatMulLayout(11973, 384, 384, 49152)).to.deep.equal(usual(11973, 384, 384));
      expect(tensorCoreMatMulLayout(2171, 1024, 1024, 49152)).to.deep.equal(usual(2171, 1024, 1024));
      // Small and split products, convolutions (a 128-channel 3×3 at 584×328) and a device short of 36.5 KiB as before.
      expect(tensorCoreMatMulLayout(1370, 384, 1536, 49152)).to.deep.equal({ ...SMALL_TC_MATMUL_LAYOUT, convertA: true });
      expect(tensorCoreConvLayout(191552, 128, 1152, 49152, 'narrow')).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 32768)).to.deep.equal(usual(11973, 1152, 384, 32768));
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 32768).buffers).to.equal(1);
      process.env['FLASHDEPTH_TC_MATMUL_BIG_BLOCK'] = '128x256';
      expect(tensorCoreMatMulLayout(2171, 3072, 1024, 49152)).to.deep.equal(wide);
      delete process.env['FLASHDEPTH_TC_MATMUL_BIG_BLOCK'];
      expect(tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
      process.env['FLASHDEPTH_TC_MATMUL_BIG_BLOCK'] = 'on';
      expect(() => tensorCoreMatMulLayout(11973, 1152, 384, 49152)).to.throw('Expected one of off, 256x128, 128x256 for FLASHDEPTH_TC_MATMUL_BIG_BLOCK but received "on"');
    });
  });

  it('tensor-core conv: 3×3 convolutions to at most 64 channels whose narrow blocks fill two waves take them (FLASHDEPTH_TC_CONV_BLOCK=narrow, the default); wider ones, smaller grids and square keep the usual blocks', () => {
    // The Full head's 32-channel conv at 2044×1148 (18 333 blocks of 128×32, 8 subgroups of 16×32) and a 64-channel
    // refinenet conv at 584×328 (1497 blocks of 128×64).
    expect(narrowConvLayout(2346512, 32, 49152)).to.deep.equal({ subgroups: { rows: 8, cols: 1 }, tiles: { rows: 1, cols: 2 } });
    expect(narrowConvLayout(191552, 64, 49152)).to.deep.equal({ subgroups: { rows: 8, cols: 1 }, tiles: { rows: 1, cols: 4 } });
    expect(tcMatMulWorkgroupBytes(narrowConvBlock(32))).to.equal(2 * (128 * 40 + 32 * 40) * 2 + 8 * 256 * 4);
    // 255 blocks of 128 rows are under two waves; 128 channels are not narrow; 32 KiB takes the 64-channel block (37 888 bytes) no more.
    expect(narrowConvLayout(255 * 128, 32, 49152)).to.equal(null);
    expect(narrowConvLayout(256 * 128, 32, 49152)).to.not.equal(null);
    expect(narrowConvLayout(2346512, 128, 49152)).to.equal(null);
    expect(narrowConvLayout(191552, 64, 32768)).to.equal(null);
    // The conv's layout: narrow where it applies, else 128×128 blocks in 8 subgroups of 64 columns (no wave fit, no doubled subgroups).
    expect(tensorCoreConvLayout(2346512, 32, 288, 49152, 'narrow')).to.deep.equal(narrowConvBlock(32));
    expect(tensorCoreConvLayout(2346512, 32, 288, 49152, 'square')).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
    expect(tensorCoreConvLayout(191552, 256, 2304, 49152, 'narrow')).to.deep.equal(DEFAULT_TC_MATMUL_LAYOUT);
    withEnvRestored('FLASHDEPTH_TC_CONV_BLOCK', () => {
      delete process.env['FLASHDEPTH_TC_CONV_BLOCK'];
      expect(convBlock()).to.equal('narrow');
      process.env['FLASHDEPTH_TC_CONV_BLOCK'] = 'square';
      expect(convBlock()).to.equal('square');
      process.env['FLASHDEPTH_TC_CONV_BLOCK'] = 'thin';
      expect(() => convBlock()).to.throw('Expected one of square, narrow for FLASHDEPTH_TC_CONV_BLOCK but received "thin"');
    });
  });

  it('tensor-core attention: only the key block that crosses the keys\' end is masked by default; FLASHDEPTH_ATTENTION_MASKING=every names its form in every chosen layout (and its shader); another value is a one-line error', () => {
    withEnvRestored('FLASHDEPTH_ATTENTION_MASKING', () => {
      delete process.env['FLASHDEPTH_ATTENTION_MASKING'];
      const layout = tensorCoreAttentionLayout(64, 49152)!;
      expect(layout).to.not.have.property('masking');
      // One branch around the loads: unmasked where a whole block lies before lk, masked in the other; the shuffles once.
      const code = new TensorCoreAttentionProgram(1, 300, 6, 64, layout).getUserCode();
      expect(code).to.include('if (keysLeft >= BLOCK_K) {');
      expect(code.match(/subgroupShuffleXor\(bm, 1u\)/g)).to.have.length(2);
      expect(code.match(/vec4<u32>\(keysLeft\)/g)).to.have.length(2);
      process.env['FLASHDEPTH_ATTENTION_MASKING'] = 'every';
      const every = tensorCoreAttentionLayout(64, 49152)!;
      expect(every.masking).to.equal('every');
      const program = new TensorCoreAttentionProgram(1, 300, 6, 64, every);
      expect(program.shaderKey).to.match(/_maskEvery/);
      expect(program.getUserCode()).to.not.include('keysLeft >= BLOCK_K');
      expect(program.getUserCode().match(/vec4<u32>\(keysLeft\)/g)).to.have.length(2);
      process.env['FLASHDEPTH_ATTENTION_MASKING'] = 'some';
      expect(() => tensorCoreAttentionLayout(64, 49152)).to.throw('Expected one of crossing, every for FLASHDEPTH_ATTENTION_MASKING but received "some"');
    });
  });

  it('tensor-core attention: the softmax in vec4s by default; FLASHDEPTH_ATTENTION_SOFTMAX=packed or scalar names its form in every chosen layout (and its shader); another value is a one-line error', () => {
    withEnvRestored('FLASHDEPTH_ATTENTION_SOFTMAX', () => {
      delete process.env['FLASHDEPTH_ATTENTION_SOFTMAX'];
      const layout = tensorCoreAttentionLayout(64, 49152)!;
      expect(layout).to.not.have.property('softmax');
      // The scratch as vec4<f32>s (subgroup-matrix offsets and strides in vec4s), P as vec2<u32>s of packed halves.
      const code = new TensorCoreAttentionProgram(1, 300, 6, 64, layout).getUserCode();
      expect(code).to.match(/var<workgroup> scratch : array<vec4<f32>, \d+>/);
      expect(code).to.match(/var<workgroup> pTile : array<vec2<u32>, \d+>/);
      expect(code).to.include('SS / 4u');
      process.env['FLASHDEPTH_ATTENTION_SOFTMAX'] = 'vec4';
      expect(tensorCoreAttentionLayout(64, 49152)).to.deep.equal(layout);
      process.env['FLASHDEPTH_ATTENTION_SOFTMAX'] = 'packed';
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 2171, planes: 16 })).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup', softmax: 'packed' });
      const packedLayout = tensorCoreAttentionLayout(64, 49152)!;
      expect(packedLayout).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup', softmax: 'packed' });
      const packed = new TensorCoreAttentionProgram(1, 300, 6, 64, packedLayout);
      expect(packed.getUserCode()).to.match(/var<workgroup> scratch : array<f32, \d+>/);
      expect(packed.getUserCode()).to.match(/var<workgroup> pTile : array<vec2<u32>, \d+>/);
      expect(packed.shaderKey).to.match(/_packed_spread_vote$/);
      process.env['FLASHDEPTH_ATTENTION_SOFTMAX'] = 'scalar';
      const scalar = new TensorCoreAttentionProgram(1, 300, 6, 64, tensorCoreAttentionLayout(64, 49152)!).getUserCode();
      expect(scalar).to.match(/var<workgroup> scratch : array<f32, \d+>/);
      expect(scalar).to.match(/var<workgroup> pTile : array<f16, \d+>/);
      process.env['FLASHDEPTH_ATTENTION_SOFTMAX'] = 'f16';
      expect(() => tensorCoreAttentionLayout(64, 49152)).to.throw('Expected one of scalar, packed, vec4 for FLASHDEPTH_ATTENTION_SOFTMAX but received "f16"');
    });
  });

  it('matmul epilogue: two workgroup barriers per accumulator tile with epilogueSync \'workgroup\', the subgroup\'s program order with \'subgroup\' (FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC, default subgroup)', () => {
    const program = (layout: TensorCoreMatMulLayout) => new TensorCoreMatMulProgram(300, 160, packedA(300, 256), true, 'scaleAdd', layout, 'packed');
    const byBarriers = program(SMALL_TC_MATMUL_LAYOUT);
    expect(program({ ...SMALL_TC_MATMUL_LAYOUT, epilogueSync: 'workgroup' }).getUserCode()).to.equal(byBarriers.getUserCode());
    const bySubgroups = program({ ...SMALL_TC_MATMUL_LAYOUT, epilogueSync: 'subgroup' });
    // 2 × 2 tiles per subgroup: 8 syncs around the scratch, plus the main loop's barriers (unchanged).
    const count = (code: string, pattern: RegExp) => code.match(pattern)?.length ?? 0;
    const loopBarriers = count(byBarriers.getUserCode(), /workgroupBarrier\(\);/g) - 8;
    expect(count(bySubgroups.getUserCode(), /workgroupBarrier\(\);/g)).to.equal(loopBarriers);
    expect(count(bySubgroups.getUserCode(), new RegExp(`${SUBGROUP_SCRATCH_SYNC}\\(\\);`, 'g'))).to.equal(8);
    expect(bySubgroups.getUserCode()).to.contain(`fn ${SUBGROUP_SCRATCH_SYNC}() {}`);
    expect(byBarriers.getUserCode()).to.not.contain(SUBGROUP_SCRATCH_SYNC);
    expect(bySubgroups.shaderKey).to.equal(`${byBarriers.shaderKey}_epiSubgroup`);
    expectSwitch('FLASHDEPTH_TC_MATMUL_EPILOGUE_SYNC', matMulEpilogueSync, 'subgroup', ['workgroup', 'workgroup'], 'none', 'workgroup, subgroup');
  });

  it('matmul residual prefetch: every residual value of a subgroup\'s tiles loaded before the first round trip, only where the epilogue reads a residual (FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH, default on)', () => {
    const program = (epilogue: MatMulEpilogue, layout: TensorCoreMatMulLayout) => new TensorCoreMatMulProgram(300, 160, packedA(300, 256), true, epilogue, layout, 'packed');
    const prefetching = { ...SMALL_TC_MATMUL_LAYOUT, residualPrefetch: true };
    const code = program('scaleAdd', prefetching).getUserCode();
    // 2 × 2 tiles, two units each: 8 loads, all before the first tile's store into the scratch.
    const loads = [...code.matchAll(/let res\d_\d_\d = loadResidual\(/g)].map((m) => m.index!);
    expect(loads).to.have.length(8);
    expect(Math.max(...loads)).to.be.below(code.indexOf('subgroupMatrixStore<row_major>(&cTile'));
    expect(code).to.contain('writeTile(sg, lane, rs + 16u, cs + 16u, res1_1_0, res1_1_1);');
    expect(program('scaleAdd', prefetching).shaderKey).to.equal(`${program('scaleAdd', SMALL_TC_MATMUL_LAYOUT).shaderKey}_resPrefetch`);
    // No residual in the epilogue (GELU), or split-K partials (the reduction adds it): nothing to prefetch.
    expect(program('gelu', prefetching).getUserCode()).to.equal(program('gelu', SMALL_TC_MATMUL_LAYOUT).getUserCode());
    const partials = new TensorCoreMatMulProgram(300, 160, packedA(300, 256), false, 'none', { ...prefetching, splitK: 2 }, 'packed', 'partials').getUserCode();
    expect(partials).to.not.contain('loadResidual');
    expectSwitch('FLASHDEPTH_TC_MATMUL_RESIDUAL_PREFETCH', matMulResidualPrefetch, 'on', ['off', 'off'], 'yes', 'on, off');
  });

  it('matmul loads ahead: a second register set and a loop unrolled by two with loadAhead 2, double-buffered layouts only (FLASHDEPTH_TC_MATMUL_LOAD_AHEAD, default 1)', () => {
    const program = (layout: TensorCoreMatMulLayout) => new TensorCoreMatMulProgram(300, 160, packedA(300, 256), true, 'none', layout, 'packed');
    const one = program(SMALL_TC_MATMUL_LAYOUT);
    const two = program({ ...SMALL_TC_MATMUL_LAYOUT, loadAhead: 2 });
    expect(one.getUserCode()).to.not.match(/\bra0_1\b/);
    expect(two.getUserCode()).to.match(/var ra0_1 = vec4<i32>\(\);/);
    expect(two.getUserCode()).to.contain('for (var s = 0u; s < count; s += 2u) {');
    // Slice s + 2 loaded into the set that slice s left, the other set stored after the multiplies.
    expect(two.getUserCode()).to.match(/k8 = \(first \+ s \+ 2u\) \* 4u;\s+if \(ua0 < \d+u\) \{ ra0 = /);
    expect(two.getUserCode()).to.match(/buf = 1u;\s+if \(ua0 < \d+u\) \{ aTile\[buf \* \d+u \+ [^\]]+\] = bitcast<vec4<u32>>\(ra0_1\); \}/);
    expect(two.shaderKey).to.equal(`${one.shaderKey}_ahead2`);
    const single = { ...SMALL_TC_MATMUL_LAYOUT, buffers: 1 as const };
    expect(program({ ...single, loadAhead: 2 }).getUserCode()).to.equal(program(single).getUserCode());
    expectSwitch('FLASHDEPTH_TC_MATMUL_LOAD_AHEAD', matMulLoadAhead, 1, ['2', 2], '3', '1, 2');
  });

  it('tile element: u32 words for the matmul\'s A and B tiles and the attention\'s K/V and P tiles, offsets and strides in words (FLASHDEPTH_TC_TILE_ELEMENT, default vec4)', () => {
    const program = (layout: TensorCoreMatMulLayout) => new TensorCoreMatMulProgram(300, 160, packedA(300, 256), true, 'none', layout, 'packed');
    const vec4 = program(SMALL_TC_MATMUL_LAYOUT);
    const words = program({ ...SMALL_TC_MATMUL_LAYOUT, tileElement: 'u32' });
    // 64×64 block, 32-deep slices, double-buffered: A rows of 40 halves (20 words), B rows of 72 (36 words).
    expect(vec4.getUserCode()).to.contain('var<workgroup> aTile : array<vec4<u32>, 640>;');
    expect(words.getUserCode()).to.contain('var<workgroup> aTile : array<u32, 2560>;');
    expect(words.getUserCode()).to.contain('var<workgroup> bTile : array<u32, 2304>;');
    expect(words.getUserCode()).to.match(/subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>\(&aTile, cur \* 1280u \+ \(sgRow \+ 0u\) \* 20u \+ 0u, 20u\)/);
    expect(words.getUserCode()).to.contain('aTile[e] = v[0]; aTile[e + 1u] = v[1]; aTile[e + 2u] = v[2]; aTile[e + 3u] = v[3];');
    expect(words.shaderKey).to.equal(`${vec4.shaderKey}_u32tiles`);
    const attention = (layout: TensorCoreAttentionLayout) => new TensorCoreAttentionProgram(2, 197, 2, 64, layout);
    const att = { subgroups: 4, tiles: 1, blockK: 16, stageK: 32, kvBuffers: 1 as const, oSplit: 4 as const, spreadBanks: true };
    expect(attention(att).getUserCode()).to.match(/var<workgroup> kvTile : array<vec4<u32>, \d+>;/);
    expect(attention({ ...att, tileElement: 'u32' }).getUserCode()).to.match(/var<workgroup> kvTile : array<u32, \d+>;/);
    expect(attention({ ...att, tileElement: 'u32' }).getUserCode()).to.match(/var<workgroup> pTile : array<u32, \d+>;/);
    expect(attention({ ...att, tileElement: 'u32' }).shaderKey).to.contain('_u32tiles');
    expectSwitch('FLASHDEPTH_TC_TILE_ELEMENT', tileElement, 'vec4', ['u32', 'u32'], 'f16', 'vec4, u32');
    withEnvRestored('FLASHDEPTH_TC_TILE_ELEMENT', () => {
      process.env['FLASHDEPTH_TC_TILE_ELEMENT'] = 'u32';
      expect(tensorCoreAttentionLayout(64, 49152)?.tileElement).to.equal('u32');
      delete process.env['FLASHDEPTH_TC_TILE_ELEMENT'];
      expect(tensorCoreAttentionLayout(64, 49152)).to.not.have.property('tileElement');
    });
  });

  it('matmul epilogue scratch: vec4<f32> rows of 20 floats, one vec4 read per four columns, 256 bytes more per subgroup (FLASHDEPTH_TC_MATMUL_SCRATCH, default f32)', () => {
    const program = (layout: TensorCoreMatMulLayout) => new TensorCoreMatMulProgram(300, 160, packedA(300, 256), true, 'scaleAdd', layout, 'packed');
    const floats = program(SMALL_TC_MATMUL_LAYOUT);
    const vec4 = program({ ...SMALL_TC_MATMUL_LAYOUT, epilogueScratch: 'vec4' });
    expect(floats.getUserCode()).to.contain('var<workgroup> cTile : array<f32, 1024>;');
    expect(vec4.getUserCode()).to.contain('var<workgroup> cTile : array<vec4<f32>, 320>;');
    expect(vec4.getUserCode()).to.contain('subgroupMatrixStore<row_major>(&cTile, sg * 80u, acc1_1, 5u);');
    expect(vec4.getUserCode()).to.contain('let s = sg * 80u + (unit / 4u) * 5u + unit % 4u;');
    expect(tcMatMulWorkgroupBytes({ ...SMALL_TC_MATMUL_LAYOUT, epilogueScratch: 'vec4' }) - tcMatMulWorkgroupBytes(SMALL_TC_MATMUL_LAYOUT)).to.equal(4 * 256);
    // The 128×128 block still fits 48 KiB with it (48 128 bytes).
    expect(tcMatMulWorkgroupBytes({ ...DEFAULT_TC_MATMUL_LAYOUT, epilogueScratch: 'vec4' })).to.equal(48128);
    expect(vec4.shaderKey).to.equal(`${floats.shaderKey}_vec4scratch`);
    expectSwitch('FLASHDEPTH_TC_MATMUL_SCRATCH', matMulEpilogueScratch, 'f32', ['vec4', 'vec4'], 'f16', 'f32, vec4');
  });

  it('matmul epilogue I/O: bias, γ and residual read and C written as one vec4 per four columns, halves as vec2<i32>s; single floats for split-K partials and on request (FLASHDEPTH_TC_MATMUL_EPILOGUE_IO, default vec4)', () => {
    const program = (layout: TensorCoreMatMulLayout, output: 'f32' | 'packedF16' | 'partials' = 'f32', epilogue: MatMulEpilogue = 'scaleAdd') =>
      new TensorCoreMatMulProgram(300, 160, packedA(300, 256), output !== 'partials', output === 'partials' ? 'none' : epilogue, layout, 'packed', output);
    const vec4 = program(SMALL_TC_MATMUL_LAYOUT);
    const scalar = program({ ...SMALL_TC_MATMUL_LAYOUT, epilogueIo: 'scalar' });
    expect(vec4.getUserCode()).to.contain('v = v + Bias[c / 4u];');
    expect(vec4.getUserCode()).to.contain('v = Residual[o / 4u] + Gamma[c / 4u] * v;');
    expect(vec4.getUserCode()).to.contain('result[o / 4u] = v;');
    // N a multiple of 4: no column tail.
    expect(vec4.getUserCode()).to.not.contain('c + 4u <= uniforms.n');
    expect([vec4.outputComponent, vec4.variableComponents]).to.deep.equal([4, [4, 4, 4, 4, 4]]);
    expect(scalar.getUserCode()).to.contain('result[o] = v.x; result[o + 1u] = v.y; result[o + 2u] = v.z; result[o + 3u] = v.w;');
    expect(scalar.getUserCode()).to.contain('c + 4u <= uniforms.n');
    expect([scalar.outputComponent, scalar.variableComponents]).to.deep.equal([undefined, [4, 4, 1, 1, 1]]);
    expect(vec4.shaderKey).to.contain('_vecIo');
    expect(scalar.shaderKey).to.equal(vec4.shaderKey.replace('_vecIo', ''));
    const packed = program(SMALL_TC_MATMUL_LAYOUT, 'packedF16', 'gelu');
    expect(packed.getUserCode()).to.contain('result[(row * uniforms.n + c) / 4u] = vec2<i32>(bitcast<i32>(pack2x16float(v.xy)), bitcast<i32>(pack2x16float(v.zw)));');
    expect(packed.outputComponent).to.equal(2);
    // Partials leave by subgroup-matrix stores into an f32 array; the reduction then reads and writes vec4s.
    const partials = program({ ...SMALL_TC_MATMUL_LAYOUT, splitK: 2 }, 'partials');
    expect(partials.outputComponent).to.equal(undefined);
    expect(partials.shaderKey).to.not.contain('_vecIo');
    expect(partials.getUserCode()).to.not.contain('Bias');
    const reduce = new SplitKReduceProgram(300, 160, 320, true, 'scaleAdd', 'f32');
    expect([reduce.outputComponent, reduce.variableComponents, reduce.shaderKey]).to.deep.equal([4, [4, 4, 4, 4], 'splitKReduce_true_scaleAdd_vecIo']);
    expect(new SplitKReduceProgram(300, 160, 320, true, 'scaleAdd', 'f32', 'scalar').getUserCode()).to.contain('Residual[o + 3u]');
    expectSwitch('FLASHDEPTH_TC_MATMUL_EPILOGUE_IO', matMulEpilogueIo, 'vec4', ['scalar', 'scalar'], 'vec2', 'vec4, scalar');
  });

  it('FLASHDEPTH_ATTENTION_ROW_MAX: each layout\'s own by default (the vote in the 12-subgroup one), shuffle or vote in every chosen layout on request (named in the shader key), anything else a one-line error', () => {
    expectSwitch('FLASHDEPTH_ATTENTION_ROW_MAX', attentionRowMax, 'layout', ['vote', 'vote'], 'max', 'layout, shuffle, vote');
    const student = { rows: 11972, planes: 6 };
    const vitL = { rows: 1370, planes: 16 };
    withEnvRestored('FLASHDEPTH_ATTENTION_ROW_MAX', () => {
      delete process.env['FLASHDEPTH_ATTENTION_ROW_MAX'];
      expect(tensorCoreAttentionLayout(64, 49152, student)).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      expect(tensorCoreAttentionLayout(64, 49152, vitL)).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_ROW_MAX'] = 'vote';
      expect(tensorCoreAttentionLayout(64, 49152, student)).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup', rowMax: 'vote' });
      expect(tensorCoreAttentionLayout(64, 49152, vitL)).to.deep.equal({ ...DEFAULT_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      // Shuffles everywhere, unnamed (the kernel's own default); with session 23's banks, session 23's layout exactly.
      process.env['FLASHDEPTH_ATTENTION_ROW_MAX'] = 'shuffle';
      expect(tensorCoreAttentionLayout(64, 49152, student)).to.deep.equal({ ...WAVE_FITTED_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      expect(tensorCoreAttentionLayout(64, 49152, vitL)).to.deep.equal({ ...SESSION12_TC_ATTENTION_LAYOUT, spreadBanks: true, scratchSync: 'subgroup' });
      withEnvRestored('FLASHDEPTH_ATTENTION_BANKS', () => {
        process.env['FLASHDEPTH_ATTENTION_BANKS'] = 'session23';
        expect(tensorCoreAttentionLayout(64, 49152, vitL)).to.deep.equal({ ...SESSION12_TC_ATTENTION_LAYOUT, scratchSync: 'subgroup' });
      });
      // A layout override's own option wins over the variable.
      withEnvRestored('FLASHDEPTH_ATTENTION_LAYOUT', () => {
        process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,1,4,64/vote';
        expect(tensorCoreAttentionLayout(64, 49152, vitL)?.rowMax).to.equal('vote');
      });
    });
    const shuffles = new TensorCoreAttentionProgram(1, 11972, 6, 64, WAVE_FITTED_TC_ATTENTION_LAYOUT);
    const vote = new TensorCoreAttentionProgram(1, 11972, 6, 64, { ...WAVE_FITTED_TC_ATTENTION_LAYOUT, rowMax: 'vote' });
    expect(vote.shaderKey).to.equal(`${shuffles.shaderKey}_vote`);
    // One vote on all the subgroup's rows per block; the shuffles (two per row share) only in its branch.
    expect(vote.getUserCode()).to.contain('let anyOver = subgroupAny(lm0_0 > m0_0 + 8.0 || lm0_1 > m0_1 + 8.0);');
    expect(vote.getUserCode().split('subgroupShuffleXor(bm').length - 1).to.equal(4);
    expect(shuffles.getUserCode()).to.not.contain('anyOver');
    // Tint takes a vote's result for non-uniform: without its subgroup-uniformity check off, the shuffles and the
    // rescale's vote under the branch are a compile error on the card (lease 24A). The emulation cannot show it.
    expect(vote.getUserCode()).to.contain('diagnostic(off, subgroup_uniformity);');
    expect(shuffles.getUserCode()).to.not.contain('subgroup_uniformity');
  });

  it('FLASHDEPTH_RCU_FUSION and FLASHDEPTH_PATCH_NORM_FUSION: on by default, off turns the fusion off, anything else is a one-line error', () => {
    for (const [name, read] of [['FLASHDEPTH_RCU_FUSION', rcuFusion], ['FLASHDEPTH_PATCH_NORM_FUSION', patchNormFusion]] as const) {
      expectSwitch(name, read, 'on', ['off', 'off'], 'yes', 'on, off');
    }
  });

  it('attention branch: the qkv product writes head planes for the layout, the attention writes packed token rows; FLASHDEPTH_ATTENTION_BRANCH=separate turns the chain off', () => {
    const l = DEFAULT_TC_ATTENTION_LAYOUT;
    // ViT-L at 518²: 1370 queries padded to whole 192-row workgroups (1536), keys to whole 64-key stages (1408).
    const planes = selfAttentionPlanes(1, 1370, 16, 64, l);
    expect([planes.lqPad, planes.lkPad, planes.totalUnits]).to.deep.equal([1536, 1408, 16 * (1536 + 2 * 1408) * 16]);
    const qkv = new TensorCoreMatMulProgram(1370, 3072, packedA(1370, 1024), true, 'none', DEFAULT_TC_MATMUL_LAYOUT, 'packed', 'headPlanes', planes.totalUnits * 4);
    expect(qkv.outputShape).to.deep.equal([planes.totalUnits * 2]);
    expect(qkv.uniforms.endsWith(HEAD_PLANES_UNIFORMS)).to.equal(true);
    expect(qkv.shaderKey).to.match(/_planesOut_vecIo$/);
    expect(() => new TensorCoreMatMulProgram(1370, 3072, packedA(1370, 1024), true, 'none', { ...DEFAULT_TC_MATMUL_LAYOUT, splitK: 2 }, 'packed', 'headPlanes', 8))
      .to.throw('TensorCoreMatMulProgram: head planes are written by unsplit products only');
    const program = new TensorCoreAttentionProgram(2, 250, 2, 64, l, 'packedF16', 512);
    expect(program.outputShape).to.deep.equal([512, 64]);
    expect(program.dispatch).to.deep.equal([2, 2, 2]);
    expect(program.shaderKey).to.match(/_packedOut$/);
    expect(new TensorCoreAttentionProgram(2, 250, 2, 64, l).outputShape).to.deep.equal([2, 250, 128]);
    // Deeper stages and accumulator quarters: 32 staged keys (K and V, 2 buffers), scratch of 16 × 20 floats per subgroup.
    const staged = { ...SESSION11_TC_ATTENTION_LAYOUT, oSplit: 4 as const, stageK: 32 };
    expect(tcAttentionWorkgroupBytes(staged, 64)).to.equal(2 * 2 * 32 * 72 * 2 + 12 * 16 * 20 * 4 + 12 * 16 * 24 * 2);
    expect(new TensorCoreAttentionProgram(1, 11972, 6, 64, staged).shaderKey).to.equal('tcAttention_64_12_1_16_o4_s32');
    expect(selfAttentionPlanes(1, 11972, 6, 64, staged).lkPad).to.equal(375 * 32);
    expect(() => checkTcAttentionLayout({ ...l, stageK: 24 }, 64, 49152)).to.throw('tensor-core attention layout: blockK must be a multiple of 16 and stageK a multiple of blockK, got blockK 16, stageK 24');
    expect(new TensorCoreAttentionProgram(1, 1370, 16, 64, l).shaderKey).to.equal('tcAttention_64_12_1_16_kv1_o4_s64_spread_vote');
    withEnvRestored('FLASHDEPTH_ATTENTION_LAYOUT', () => {
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12, 1, 16, 2, 4, 32';
      expect(attentionLayoutOverride()).to.deep.equal({ subgroups: 12, tiles: 1, blockK: 16, kvBuffers: 2, oSplit: 4, stageK: 32 });
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 11972, planes: 6 })).to.deep.equal({ ...staged, scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,2,3';
      expect(() => attentionLayoutOverride()).to.throw(/FLASHDEPTH_ATTENTION_LAYOUT.*"12,1,16,2,3"/);
      // A seventh field pipelines the stage's blocks (1) or not (0); a pipelined stage of one block is a plain one.
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,1,4,64,1';
      expect(attentionLayoutOverride()).to.deep.equal({ subgroups: 12, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 4, stageK: 64, pipelined: true });
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,1,4,64,0';
      expect(attentionLayoutOverride()).to.deep.equal({ subgroups: 12, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 4, stageK: 64 });
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '12,1,16,1,4,64,2';
      expect(() => attentionLayoutOverride()).to.throw(/pipelined 0 or 1\) for FLASHDEPTH_ATTENTION_LAYOUT but received "12,1,16,1,4,64,2"$/);
      expect(new TensorCoreAttentionProgram(1, 1370, 16, 64, { ...SESSION12_TC_ATTENTION_LAYOUT, pipelined: true }).shaderKey).to.equal('tcAttention_64_12_1_16_kv1_o4_s64_pipe');
      expect(new TensorCoreAttentionProgram(1, 1370, 16, 64, { ...SESSION12_TC_ATTENTION_LAYOUT, stageK: 16, pipelined: true }).shaderKey).to.equal('tcAttention_64_12_1_16_kv1_o4');
      // Options after '/' win over the variables; unknown ones are a one-line error listing the known.
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '18,1,16,1,4,32/spread/dense/exp16/every';
      const spread = { subgroups: 18, tiles: 1, blockK: 16, kvBuffers: 1 as const, oSplit: 4 as const, stageK: 32, masking: 'every' as const, spreadBanks: true, denseP: true, exp2F16: true };
      expect(attentionLayoutOverride()).to.deep.equal(spread);
      expect(tensorCoreAttentionLayout(64, 49152, { rows: 11972, planes: 6 })).to.deep.equal({ ...spread, scratchSync: 'subgroup' });
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '18,1,16,1,4,16/spread/u32/vote';
      expect(attentionLayoutOverride()).to.deep.equal({ subgroups: 18, tiles: 1, blockK: 16, kvBuffers: 1, oSplit: 4, stageK: 16, spreadBanks: true, tileElement: 'u32', rowMax: 'vote' });
      process.env['FLASHDEPTH_ATTENTION_LAYOUT'] = '18,1,16,1,4,32/wide';
      expect(() => attentionLayoutOverride()).to.throw(/^Expected a layout whose options after '\/' are among every, scalar, packed, spread, dense, exp16, u32, vote for FLASHDEPTH_ATTENTION_LAYOUT but received "18,1,16,1,4,32\/wide"$/);
    });
    // Spread banks: score rows of blockK + 8 floats. The wave-fitted layout stages 16 keys per barrier to fit 48 KiB;
    // with dense P rows 18 subgroups of 32-key stages fit too.
    expect(tcAttentionWorkgroupBytes(WAVE_FITTED_TC_ATTENTION_LAYOUT, 64)).to.equal(16 * 2 * 72 * 2 + 18 * 16 * 24 * 4 + 18 * 16 * 24 * 2);
    expect(tcAttentionWorkgroupBytes({ ...SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, spreadBanks: true }, 64)).to.be.above(49152);
    const spread = { ...SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, spreadBanks: true, denseP: true };
    expect(tcAttentionWorkgroupBytes(spread, 64)).to.equal(32 * 2 * 72 * 2 + 18 * 16 * 24 * 4 + 18 * 16 * 16 * 2);
    expect(new TensorCoreAttentionProgram(1, 11972, 6, 64, { ...spread, exp2F16: true }).shaderKey).to.equal('tcAttention_64_18_1_16_kv1_o4_s32_spread_denseP_exp16');
    // Session 18's order costs 4 wavefronts per P store (two rows per bank); the spread orders reach the minimum, 2,
    // with the vec4 score reads at their minimum of 4 (one per 8-lane phase) for both P strides.
    const costs = (layout: TensorCoreAttentionLayout, ss: number, psWords: number) => {
      const order = softmaxRowOrder(layout);
      expect([...order].sort()).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
      return [bankWavefronts(4, (lane) => order[lane >> 2]! * ss + 4 * (lane & 3)), bankWavefronts(2, (lane) => order[lane >> 2]! * psWords + 2 * (lane & 3))];
    };
    expect(softmaxRowOrder(SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT)).to.deep.equal([0, 4, 1, 5, 2, 6, 3, 7]);
    expect(costs(SESSION19_WAVE_FITTED_TC_ATTENTION_LAYOUT, 20, 12)).to.deep.equal([4, 4]);
    expect(costs(spread, 24, 8)).to.deep.equal([4, 2]);
    expect(costs({ ...spread, denseP: false }, 24, 12)).to.deep.equal([4, 2]);
    expect(costs({ ...spread, blockK: 32, stageK: 32, denseP: false }, 40, 20)).to.deep.equal([4, 2]);
    // The scores' subgroup-matrix store (two f32 per invocation, rows lane / 4): 4 wavefronts per 8 columns at 20
    // floats per row, 2 at 24.
    expect(bankWavefronts(2, (lane) => (lane >> 2) * 20 + 2 * (lane & 3))).to.equal(4);
    expect(bankWavefronts(2, (lane) => (lane >> 2) * 24 + 2 * (lane & 3))).to.equal(2);
    withEnvRestored('FLASHDEPTH_ATTENTION_BRANCH', () => {
      delete process.env['FLASHDEPTH_ATTENTION_BRANCH'];
      expect(attentionBranch()).to.equal('chained');
      process.env['FLASHDEPTH_ATTENTION_BRANCH'] = 'separate';
      expect(attentionBranch()).to.equal('separate');
      expect(mixedSelfAttentionSupports(1, 1370, 1024, 16)).to.equal(false);
      process.env['FLASHDEPTH_ATTENTION_BRANCH'] = 'fused';
      expect(() => attentionBranch()).to.throw('Expected one of chained, separate for FLASHDEPTH_ATTENTION_BRANCH but received "fused"');
    });
  });

  it('MLP on tensor cores: hidden widths it chains in f16, one-line shape errors, packed output only for whole slices', () => {
    // fc1's output becomes fc2's packed operand without column padding: hidden a multiple of 32, at least 64.
    expect([mixedMlpSupports(384, 1536, 384), mixedMlpSupports(1024, 4096, 1024), mixedMlpSupports(52, 64, 20)]).to.deep.equal([true, true, true]);
    expect([mixedMlpSupports(384, 1540, 384), mixedMlpSupports(384, 32, 384), mixedMlpSupports(382, 1536, 384)]).to.deep.equal([false, false, false]);
    const a = tf.zeros([10, 384]) as tf.Tensor2D;
    const fc1 = { weight: tf.zeros([384, 1536]) as tf.Tensor2D };
    const fc2 = { weight: tf.zeros([1500, 384]) as tf.Tensor2D };
    expect(() => mixedMlp(a, { fc1, fc2 })).to.throw(ShapeError, /^mixedMlp: expected .* got a \[10, 384\], fc1 \[384, 1536\], fc2 \[1500, 384\]$/);
    tf.dispose([a, fc1.weight, fc2.weight]);
    const shape = packedA(77, 52);
    const layout = { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 } };
    expect(() => new TensorCoreMatMulProgram(77, 20, shape, false, 'gelu', layout, 'packed', 'packedF16'))
      .to.throw('TensorCoreMatMulProgram: a packed f16 output needs N a multiple of 32, got 20');
    // Packed output: [A's padded rows, N/2] int32 half pairs; f32 output: [M, N].
    expect(new TensorCoreMatMulProgram(77, 64, shape, false, 'gelu', layout, 'packed', 'packedF16').outputShape).to.deep.equal([80, 32]);
    expect(new TensorCoreMatMulProgram(77, 64, shape, false, 'gelu', layout, 'packed').outputShape).to.deep.equal([77, 64]);
    // Split-K partials: [splits, whole blocks of rows, whole blocks of columns], one dispatch layer per split; the
    // epilogue belongs to the reduction.
    const split = { ...layout, splitK: 3 };
    const partials = new TensorCoreMatMulProgram(77, 100, packedA(77, 384), false, 'none', split, 'packed', 'partials');
    expect([partials.outputShape, partials.dispatch]).to.deep.equal([[3, 128, 128], [2, 2, 3]]);
    expect(() => new TensorCoreMatMulProgram(77, 100, packedA(77, 384), true, 'none', split, 'packed', 'partials'))
      .to.throw('TensorCoreMatMulProgram: split-K partials take no bias or epilogue (the reduction runs them)');
    expect(() => new SplitKReduceProgram(77, 102, 80, true, 'none', 'f32')).to.throw('SplitKReduceProgram: N must be a multiple of 4, got 102');
  });

  it('programs compile sizes that tfjs does not key on into uniforms: one shader key, one WGSL text, whatever the rows', () => {
    // tfjs keys its pipeline cache on shaderKey plus the ranks (not the sizes) of the shapes, so a size baked into
    // the WGSL but missing from shaderKey would make a later call with other sizes run the first call's shader.
    const layout = { subgroups: { rows: 2, cols: 2 }, tiles: { rows: 2, cols: 2 } };
    const pairs: [{ shaderKey: string; getUserCode(): string }, { shaderKey: string; getUserCode(): string }][] = [
      [new LayerNormPackF16Program(packedA(77, 384)), new LayerNormPackF16Program(packedA(1370, 384))],
      [new PackF16Program(packedA(77, 384)), new PackF16Program(packedA(1370, 384))],
      [new TensorCoreMatMulProgram(77, 64, packedA(77, 384), true, 'gelu', layout, 'packed', 'packedF16'),
        new TensorCoreMatMulProgram(1370, 64, packedA(1370, 384), true, 'gelu', layout, 'packed', 'packedF16')],
      [new LayerNormProgram(77, 384), new LayerNormProgram(1370, 384)],
    ];
    for (const [small, large] of pairs) {
      expect(large.shaderKey).to.equal(small.shaderKey);
      expect(large.getUserCode(), small.shaderKey).to.equal(small.getUserCode());
    }
  });

  it('subgroup-matrix emulation reads tiles of packed halves with offsets and strides in their elements', () => {
    const code = ['enable chromium_experimental_subgroup_matrix;', 'var<workgroup> tile : array<vec4<u32>, 64>;', 'var<workgroup> out : array<f32, 256>;',
      'fn f() { let m = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tile, 3u, 9u); subgroupMatrixStore<row_major>(&out, 0u, m2, 16u); }'].join('\n');
    const out = emulateSubgroupMatrices(code);
    expect(out).to.include('smLoad_right_tile(3u, true, 9u)');
    expect(out).to.include('smStore_out(0u, m2, false, 16u)');
    // vec4<u32> elements hold 8 halves: offset and stride scale by 8, reads unpack the half.
    expect(out).to.match(/fn smLoad_right_tile\(offset : u32, colMajor : bool, elementStride : u32\) -> SMright \{ let off = offset \* 8u; let stride = elementStride \* 8u;/);
    expect(out).to.include('emuHalf8(tile[');
    expect(() => emulateSubgroupMatrices('enable chromium_experimental_subgroup_matrix;\nfn f() { let m = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&nowhere, 0u, 16u); }'))
      .to.throw('emulateSubgroupMatrices: no declaration of nowhere');
  });

  it('Mamba scan: lane groups of the fixed subgroup size (4–32) or 32 with workgroup sums, one row per workgroup unless tuned, tuning checked', () => {
    expect(scanLanes(32)).to.deep.equal({ lanes: 32, subgroupReduce: true });
    expect(scanLanes(8)).to.deep.equal({ lanes: 8, subgroupReduce: true });
    for (const size of [0, 2, 12, 64]) expect(scanLanes(size), `subgroup size ${size}`).to.deep.equal({ lanes: 32, subgroupReduce: false });
    const dims = { batch: 1, length: 9, heads: 8, headdim: 64, dState: 256, dConv: 4, hasState: false };
    const program = new MambaScanProgram(dims, 32);
    expect(program.workgroupSize).to.deep.equal([32, 1, 1]);
    expect(program.dispatch).to.deep.equal([8, 1, 64]);
    expect(new MambaScanProgram(dims, 32, { rows: 8 }).workgroupSize).to.deep.equal([256, 1, 1]);
    expect(new MambaScanProgram(dims, 8, { unroll: 8, rows: 2 }).dispatch).to.deep.equal([8, 1, 32]);
    expect(() => new MambaScanProgram(dims, 8, { unroll: 16 })).to.throw('MambaScanProgram: tokens per step 16, state rows per workgroup 1 and chunk tokens 0 do not fit 8 lanes per row and heads of 64 (expected 1 ≤ tokens ≤ lanes, rows dividing the head, chunk tokens ≥ 0)');
    expect(() => new MambaScanProgram(dims, 32, { rows: 3 })).to.throw(/state rows per workgroup 3 .* rows dividing the head/);
  });

  it('Mamba scan time chunks: whole steps per chunk, the last one shorter, one chunk below the chunk size, its own shaders and grid, switch checked', () => {
    expect(scanChunks(841, 64, 8)).to.deep.equal({ chunks: 14, chunkLength: 64 }); // ⌈841/14⌉ = 61 → 64; 13 × 64 + 9
    expect(scanChunks(464, 64, 8)).to.deep.equal({ chunks: 8, chunkLength: 64 }); // 58 → 64; 7 × 64 + 16
    expect(scanChunks(37, 8, 2)).to.deep.equal({ chunks: 5, chunkLength: 8 });
    expect(scanChunks(49, 64, 8)).to.deep.equal({ chunks: 1, chunkLength: 56 });
    expect(scanChunks(841, 0, 8)).to.deep.equal({ chunks: 1, chunkLength: 848 });
    const dims = { batch: 2, length: 841, heads: 8, headdim: 64, dState: 256, dConv: 4, hasState: true };
    const whole = new MambaScanProgram(dims, 32, { chunkTokens: 0 });
    const chunked = new MambaScanProgram(dims, 32, { chunkTokens: 64 });
    expect(whole.variableNames).to.deep.equal(['Conv', 'ALog', 'DSkip', 'State']);
    expect(chunked.variableNames).to.deep.equal(['Conv', 'ALog', 'DSkip', 'State', 'Chunks']);
    expect(chunked.dispatch).to.deep.equal([8, 2, 64 * 14]);
    expect(chunked.shaderKey).to.equal(`${whole.shaderKey}_chunks14`);
    const first = new MambaChunkStateProgram(dims, 32, { chunkTokens: 64 });
    expect(first.dispatch).to.deep.equal([8, 2, 64 * 13]);
    expect(first.outputShape).to.deep.equal([2 * 13 * 8 * (64 * 256 + 1)]);
    expect(first.shaderKey).to.match(/_chunks14$/);
    expect(chunked.getUserCode()).to.match(/subgroupAdd\(/).and.to.match(/DINNER \+ N \+/);
    expect(first.getUserCode()).to.not.match(/subgroupAdd\(|DINNER \+ N \+/); // no row sums, no C loads
    expect(() => new MambaChunkStateProgram(dims, 32, { chunkTokens: 0 })).to.throw('MambaChunkStateProgram: a frame of 841 tokens is one chunk (expected at least 2)');
    withEnvRestored('FLASHDEPTH_MAMBA_CHUNK_TOKENS', () => {
      process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'] = '128';
      expect(mambaChunkTokensOverride()).to.equal(128);
      expect(new MambaScanProgram(dims, 32).shape.chunks).to.equal(7);
      process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'] = '-4';
      expect(() => mambaChunkTokensOverride()).to.throw(ConfigError, 'Expected a whole number of tokens ≥ 0 (0: no chunks) for FLASHDEPTH_MAMBA_CHUNK_TOKENS but received');
      delete process.env['FLASHDEPTH_MAMBA_CHUNK_TOKENS'];
      expect(mambaChunkTokensOverride()).to.equal(null);
    });
  });

  it('LayerNorm rows: one per workgroup of 64 (tree sums) or one per fixed-size subgroup dividing 64 (subgroupAdd), by FLASHDEPTH_LAYER_NORM_SUMS', () => {
    for (const [size, lanes] of [[32, 32], [8, 8], [64, 64], [0, 0], [128, 0], [48, 0]] as const) expect(layerNormLanes(size), `subgroup size ${size}`).to.equal(lanes);
    const tree = new LayerNormPackF16Program(packedA(77, 384));
    const subgroups = new LayerNormPackF16Program(packedA(77, 384), 32);
    // 77 rows padded to 80: 80 workgroups of one row, or 40 of two.
    expect([tree.dispatch, subgroups.dispatch]).to.deep.equal([[80, 1, 1], [40, 1, 1]]);
    expect(subgroups.shaderKey).to.equal(`${tree.shaderKey}_sg32`);
    expect(tree.getUserCode()).to.match(/workgroupBarrier\(\)/).and.not.match(/subgroupAdd/);
    expect(subgroups.getUserCode()).to.match(/enable subgroups;/).and.match(/subgroupAdd\(value\)/).and.not.match(/workgroupBarrier/);
    // Rows fold into y past 65 535 workgroups: 600 000 rows in 8 lanes are 75 000 workgroups of 8 rows.
    const folded = new LayerNormProgram(600_000, 6, 8);
    expect(folded.dispatch).to.deep.equal([37500, 2, 1]);
    expect(folded.shaderKey).to.equal('layerNorm_6_sg8');
    const reduce = new SplitKReduceLayerNormProgram(packedA(77, 384), true, 'scaleAdd', 32);
    expect(reduce.dispatch).to.deep.equal([40, 1, 1]);
    expect(reduce.shaderKey).to.match(/_sg32$/);
    withEnvRestored('FLASHDEPTH_LAYER_NORM_SUMS', () => {
      delete process.env['FLASHDEPTH_LAYER_NORM_SUMS'];
      expect(layerNormSums()).to.equal('workgroup');
      expect(layerNormRowLanes()).to.equal(0);
      process.env['FLASHDEPTH_LAYER_NORM_SUMS'] = 'subgroup';
      expect(layerNormSums()).to.equal('subgroup');
      process.env['FLASHDEPTH_LAYER_NORM_SUMS'] = 'warp';
      expect(() => layerNormSums()).to.throw(ConfigError, 'Expected one of workgroup, subgroup for FLASHDEPTH_LAYER_NORM_SUMS but received');
    });
  });

  it('packs f16 head planes with query rows padded to whole workgroups and keys to whole blocks', () => {
    // 300 queries in workgroups of 128 rows → 384; 45 keys in blocks of 32 → 64.
    const p = packedPlanes(2, 300, 45, 3, 64, 128, 32);
    expect(p.lqPad).to.equal(384);
    expect(p.lkPad).to.equal(64);
    expect(p.qUnits).to.equal(2 * 3 * 384 * 16);
    expect(p.kUnits).to.equal(2 * 3 * 64 * 16);
    expect(p.totalUnits).to.equal(p.qUnits + 2 * p.kUnits);
  });

  it('--precision mixed falls back to fp32 with a reason where the backend has no tensor cores', () => {
    const r = applyPrecision('mixed');
    expect(r.precision).to.equal('fp32');
    expect(r.note).to.match(/--precision mixed needs webgpu with f16 subgroup matrices \(tensor cores\); the wasm backend has none, running fp32/);
    expect(precisionMode()).to.equal('mixed'); // the request is kept; the kernels check availability per call
    expect(useTensorCores()).to.equal(false);
    expect(applyPrecision('fp32')).to.deep.equal({ precision: 'fp32' });
  });

  it('rejects an unknown precision naming the flag and the choices', () => {
    expect(() => setPrecision('bf16' as 'fp32')).to.throw(ConfigError, /^Expected one of fp32, mixed for --precision but received "bf16"$/);
  });

  it('linear epilogues on the ops path equal the separate ops', async () => {
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 1);
    const w = tf.randomNormal([8, 12], 0, 0.5, 'float32', 2);
    const b = tf.randomNormal([12], 0, 1, 'float32', 3);
    const r = tf.randomNormal([2, 5, 12], 0, 1, 'float32', 4);
    const g = tf.randomNormal([12], 0, 1, 'float32', 5);
    const before = tf.memory().numTensors;
    const pairs = tf.tidy(() => [
      [linear(x, w, b, { activation: 'gelu' }), gelu(linear(x, w, b))],
      [linear(x, w, b, { residual: { x: r, gamma: g } }), addScaled(r, linear(x, w, b), g)],
    ]);
    for (const [fused, separate] of pairs) {
      expect(fused!.shape).to.deep.equal([2, 5, 12]);
      const [a, e] = [await fused!.data(), await separate!.data()];
      expect(Array.from(a)).to.deep.equal(Array.from(e));
      expect(Math.max(...Array.from(a).map(Math.abs))).to.be.greaterThan(0.1);
    }
    tf.dispose(pairs.flat());
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([x, w, b, r, g]);
  });
});
