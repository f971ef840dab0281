/**
 * `FlashDepthMambaScan`: everything of a Mamba2 frame between in_proj and out_proj (conv, SiLU, Δ, selective scan,
 * D skip, gated RMSNorm) as one tfjs kernel of four dispatches (./mamba-scan_webgpu.ts), with two outputs: the
 * normalised y and the new SSM state. Forward only (no gradient is registered): callers use it only where
 * `useFusedKernels()` says so.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ShapeError } from '../errors.js';
import { webgpuCapabilities } from '../backend/webgpu.js';
import { CopyRangeProgram, GatedRmsNormProgram, MambaChunkStateProgram, MambaConvProgram, MambaScanProgram, type MambaScanDims, type ScanTuning } from './mamba-scan_webgpu.js';
import type { ProgramUniform, WebGPUBackendLike } from './program.js';

export const MAMBA_SCAN = 'FlashDepthMambaScan';

/** The Mamba2 parameters the kernel reads, in tfjs layout. */
export interface MambaScanWeights {
  /** [d_conv, conv_dim] */
  convWeight: tf.Tensor;
  /** [conv_dim] */
  convBias: tf.Tensor;
  /** [H] */
  dtBias: tf.Tensor;
  /** [H] */
  aLog: tf.Tensor;
  /** D, [H] */
  dSkip: tf.Tensor;
  /** Gated RMSNorm weight, [d_inner] */
  normWeight: tf.Tensor;
}

export interface MambaScanAttrs {
  headdim: number;
  dState: number;
  /** Gated RMSNorm eps (Mamba2: 1e-5). */
  eps: number;
}

export interface MambaScanResult {
  /** Gated-RMSNormed y, [B, L, d_inner]: the input of out_proj. */
  y: tf.Tensor3D;
  /** [B, H, P, N] */
  state: tf.Tensor4D;
}

export interface WebGPUBackendWithDispose extends WebGPUBackendLike {
  disposeData(dataId: tf.DataId): boolean;
}

/**
 * The selective scan of MambaConvProgram's output `conv`: MambaScanProgram's flat [y | final state], after
 * MambaChunkStateProgram's first pass where the layout cuts the frame into time chunks (`tuning`: for measurements).
 */
export function runMambaScan(backend: WebGPUBackendWithDispose, dims: MambaScanDims, subgroupSize: number, conv: tf.TensorInfo, aLog: tf.TensorInfo,
  dSkip: tf.TensorInfo, state: tf.TensorInfo | null, tuning: Partial<ScanTuning> = {}): tf.TensorInfo {
  const program = new MambaScanProgram(dims, subgroupSize, tuning);
  const uniforms: ProgramUniform[] = [{ type: 'int32', data: [dims.batch] }, { type: 'int32', data: [dims.length] }, { type: 'int32', data: [program.shape.chunkLength] }];
  const chunks = program.shape.chunks > 1
    ? backend.runWebGPUProgram(new MambaChunkStateProgram(dims, subgroupSize, tuning), [conv, aLog], 'float32', uniforms)
    : null;
  const scan = backend.runWebGPUProgram(program, [conv, aLog, dSkip, ...(state ? [state] : []), ...(chunks ? [chunks] : [])], 'float32', uniforms);
  if (chunks) backend.disposeData(chunks.dataId); // released once the scan that reads it has run
  return scan;
}

function mambaScanWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo[] {
  const { zxbcdt, convWeight, convBias, dtBias, aLog, dSkip, normWeight, state } = args.inputs as Record<string, tf.TensorInfo>;
  const { headdim, dState, eps } = args.attrs as unknown as MambaScanAttrs;
  const backend = args.backend as WebGPUBackendWithDispose;
  const [batch, length] = zxbcdt!.shape as [number, number, number];
  const heads = dtBias!.shape[0]!;
  const dInner = heads * headdim;
  const dims = { batch, length, heads, headdim, dState, dConv: convWeight!.shape[0]!, hasState: state !== undefined };
  const conv = backend.runWebGPUProgram(new MambaConvProgram(dims), [zxbcdt!, convWeight!, convBias!, dtBias!], 'float32');
  const subgroupSize = scanReduction === 'workgroup' ? 0 : webgpuCapabilities().subgroupSize;
  const scan = runMambaScan(backend, dims, subgroupSize, conv, aLog!, dSkip!, state ?? null);
  backend.disposeData(conv.dataId);
  const y = backend.runWebGPUProgram(new GatedRmsNormProgram(batch, length, dInner), [scan, zxbcdt!, normWeight!], 'float32', [{ type: 'float32', data: [eps] }]);
  const newState = backend.runWebGPUProgram(new CopyRangeProgram([batch, heads, headdim, dState]), [scan], 'float32', [{ type: 'int32', data: [batch * length * dInner] }]);
  backend.disposeData(scan.dataId); // released once the queued dispatches that read it have run
  return [y, newState];
}

export const mambaScanConfig: tf.KernelConfig = { kernelName: MAMBA_SCAN, backendName: 'webgpu', kernelFunc: mambaScanWebGPU as tf.KernelFunc };

/** Whether the kernel takes this head size and state size (any positive sizes). */
export function mambaScanSupports(headdim: number, dState: number): boolean {
  return Number.isInteger(headdim) && Number.isInteger(dState) && headdim >= 1 && dState >= 1;
}

/** How the scan sums its state rows: subgroupAdd where the device allows (`auto`), or through workgroup memory. */
export type ScanReduction = 'auto' | 'workgroup';
let scanReduction: ScanReduction = 'auto';

/** Tests and measurements: force the workgroup-memory row sums (the path of devices without fixed-size subgroups). */
export function setScanReduction(reduction: ScanReduction): void {
  scanReduction = reduction;
}

/**
 * One Mamba2 frame from the in_proj output zxbcdt [B, L, 2·d_inner + 2N + H] (z | xBC | dt, spec §3.2) to the
 * input of out_proj, and the SSM state after the last token. `state` [B, H, P, N] is carried in; null = zeros.
 * The causal conv starts from zeros at the frame start. L ≥ 1.
 */
export function fusedMambaScan(zxbcdt: tf.Tensor3D, weights: MambaScanWeights, state: tf.Tensor4D | null, attrs: MambaScanAttrs): MambaScanResult {
  const { headdim, dState } = attrs;
  const [batch, length, width] = zxbcdt.shape;
  const heads = weights.dtBias.size;
  const dInner = heads * headdim;
  const convDim = dInner + 2 * dState;
  const expectedState = [batch, heads, headdim, dState];
  const shapesFit = width === 2 * dInner + 2 * dState + heads && length >= 1
    && weights.convWeight.rank === 2 && weights.convWeight.shape[1] === convDim && weights.convBias.size === convDim
    && weights.aLog.size === heads && weights.dSkip.size === heads && weights.normWeight.size === dInner
    && (state === null || tf.util.arraysEqual(state.shape, expectedState));
  if (!mambaScanSupports(headdim, dState) || !shapesFit) {
    throw new ShapeError(`mambaScan: zxbcdt [${zxbcdt.shape.join(', ')}], conv weight [${weights.convWeight.shape.join(', ')}] and state `
      + `[${state ? state.shape.join(', ') : 'none'}] do not fit ${heads} heads of ${headdim} channels with d_state ${dState} `
      + `(expected zxbcdt [B, L ≥ 1, ${2 * dInner + 2 * dState + heads}], state [${expectedState.join(', ')}])`);
  }
  const inputs: tf.NamedTensorMap = { zxbcdt, ...weights };
  if (state) inputs['state'] = state;
  const [y, newState] = tf.engine().runKernel(MAMBA_SCAN, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y: y as tf.Tensor3D, state: newState as tf.Tensor4D };
}
