/**
 * A 1×1 convolution to a few output channels (the depth head's output_conv2[2]: 32 → 1), one output pixel per
 * invocation: its Cin channels in vec4 loads, dotted with each output channel's weights, plus bias (optional ReLU).
 * tfjs runs it as a matMul whose dispatch cannot hold the 2.3 M pixels of a 2044×1148 frame, so the model cut it into
 * five bands (a slice and a matMul each, then a concat: 1.2 ms of a Full frame on the H100, lease 10A); this reads the
 * 32-channel map once in one dispatch.
 */
import { foldedDispatch, type WebGPUProgram } from './program.js';

const WORKGROUP = 64;

export class PointwiseConvProgram implements WebGPUProgram {
  variableNames = ['X', 'W', 'Bias'];
  variableComponents = [4, 1, 1];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP, 1, 1];
  uniforms = 'pixels : i32,';
  private readonly cin: number;
  private readonly cout: number;
  private readonly relu: boolean;

  /** NHWC `inputShape` (C a multiple of 4) → the same pixels with `cout` channels. */
  constructor(inputShape: readonly number[], cout: number, relu: boolean) {
    const [b, h, w, cin] = inputShape as [number, number, number, number];
    const pixels = b * h * w;
    this.cin = cin;
    this.cout = cout;
    this.relu = relu;
    this.outputShape = [b, h, w, cout];
    this.shaderKey = `flashdepthPointwiseConv_${cin}_${cout}_${relu}`;
    this.dispatch = foldedDispatch(Math.ceil(pixels / WORKGROUP));
  }

  getUserCode(): string {
    const { cin, cout } = this;
    const outs = [...Array(cout).keys()];
    // W is [Cin, Cout]: the weights of output o for input channels 4c … 4c + 3.
    const column = (o: number) => `vec4<f32>(W[(4 * c) * ${cout} + ${o}], W[(4 * c + 1) * ${cout} + ${o}], W[(4 * c + 2) * ${cout} + ${o}], W[(4 * c + 3) * ${cout} + ${o}])`;
    return `
      fn main(pixel : i32) {
        if (pixel >= uniforms.pixels) { return; }
        ${outs.map((o) => `var acc${o} = 0.0;`).join(' ')}
        for (var c = 0; c < ${cin / 4}; c++) {
          let v = X[pixel * ${cin / 4} + c];
          ${outs.map((o) => `acc${o} = acc${o} + dot(v, ${column(o)});`).join('\n          ')}
        }
        ${outs.map((o) => `result[pixel * ${cout} + ${o}] = ${this.relu ? `max(acc${o} + Bias[${o}], 0.0)` : `acc${o} + Bias[${o}]`};`).join('\n        ')}
      }
    `;
  }
}
