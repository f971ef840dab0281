// GPU-host probe: how fast subgroup-matrix multiplies run when their operands are loaded from workgroup memory, by
// the form of the workgroup array (f16, u32 or vec4<u32> elements: offsets and strides counted in those) and its row
// stride (a multiple of 128 bytes, where the rows of a 16×16 matrix share banks, or padded by 16 bytes). The tensor-core
// matmul and attention (src/kernels/tc-*_webgpu.ts) load from vec4<u32> tiles with padded rows; tc-ceiling.mjs timed
// f16 tiles with unpadded rows (115–160 TFLOP/s, against ~600 from registers). Also: an f32 accumulator's round trip
// through a workgroup scratch (store, reload as a result matrix), as the attention's scores and rescales make.
// Usage (GPU host, after `source .gpu/env.sh`): node scripts/wg-matrix-forms.mjs [--json out.json]
import { createRequire } from 'module';
import { writeFileSync } from 'fs';
const require = createRequire(process.cwd() + '/');
const { create, globals } = require('webgpu');
Object.assign(globalThis, globals);

const gpu = create(['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness']);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const device = await adapter.requestDevice({
  requiredFeatures: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'],
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize },
});
let gpuError = null;
device.onuncapturederror = (e) => { gpuError = e.error.message; };
console.log('adapter', adapter.info.vendor, adapter.info.architecture, adapter.info.description);

const WORKGROUPS = 132 * 8;
const ITERS = 1024;
const SUBGROUPS = 8;
const sink = device.createBuffer({ size: 64 << 20, usage: GPUBufferUsage.STORAGE });
const source = device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(source, 0, new Uint16Array(1 << 19).map((_, i) => 0x3c00 + (i % 7)));
const results = [];

async function time(code, flop, label) {
  gpuError = null;
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) { console.log(label, 'WGSL error', errors.map((m) => `${m.lineNum}: ${m.message}`).join(' | ')); results.push({ label, error: errors[0].message }); return; }
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [source, sink].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const run = async (n) => {
    const encoder = device.createCommandEncoder();
    for (let r = 0; r < n; r++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(WORKGROUPS);
      pass.end();
    }
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  // Long enough untimed that the clock is up (it idles at 345 MHz): ~20 dispatches.
  await run(20);
  const t0 = performance.now();
  await run(10);
  const ms = (performance.now() - t0) / 10;
  const row = { label, ms: +ms.toFixed(3), tflops: +(flop / ms / 1e9).toFixed(1), error: gpuError ?? undefined };
  results.push(row);
  console.log(JSON.stringify(row));
}

// elem: the workgroup array's element and how many halves it holds.
const ELEMENTS = { f16: ['f16', 1], u32: ['u32', 2], vec4u: ['vec4<u32>', 8] };
const left = 'subgroup_matrix_left<f16, 16, 16>';
const right = 'subgroup_matrix_right<f16, 16, 16>';
const result = 'subgroup_matrix_result<f32, 16, 16>';

// A operand: 64 k-columns of 16·rowsA·4 rows (subgroups sg and sg + 4 share theirs); B: 64 k-rows of 16·colsB columns
// shared by all subgroups. Per iteration each subgroup loads rowsA A and colsB B
// matrices at k offset (it % 4)·16 and multiplies rowsA·colsB pairs.
for (const [rowsA, colsB] of [[2, 4], [4, 4]]) {
  for (const elem of Object.keys(ELEMENTS)) {
    for (const pad of [0, 8]) {
      const [type, halves] = ELEMENTS[elem];
      const aStride = 64 + pad; // halves
      const bCols = 16 * colsB;
      const bStride = bCols + pad;
      const aRows = 16 * rowsA * 4;
      const aLen = (aRows * aStride) / halves;
      const bLen = (64 * bStride) / halves;
      if ((aLen + bLen) * halves * 2 > 48 * 1024) { console.log('skip (workgroup memory)', elem, pad, rowsA, colsB); continue; }
      const body = [];
      for (let i = 0; i < rowsA; i++) body.push(`let a${i} = subgroupMatrixLoad<${left}, row_major>(&aTile, (((sg % 4u) * ${16 * rowsA}u + ${16 * i}u) * ${aStride}u + (it % 4u) * 16u) / ${halves}u, ${aStride / halves}u);`);
      for (let j = 0; j < colsB; j++) body.push(`let b${j} = subgroupMatrixLoad<${right}, row_major>(&bTile, ((it % 4u) * 16u * ${bStride}u + ${16 * j}u) / ${halves}u, ${bStride / halves}u);`);
      const decl = [];
      const stores = [];
      for (let i = 0; i < rowsA; i++) for (let j = 0; j < colsB; j++) {
        decl.push(`var acc${i}_${j} : ${result};`);
        body.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
        stores.push(`subgroupMatrixStore<row_major>(&sink, ((wid.x * ${SUBGROUPS}u + sg) % 2048u) * 4096u + ${(i * colsB + j) * 256}u, acc${i}_${j}, 16u);`);
      }
      const code = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> src: array<${type}>;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;
var<workgroup> aTile: array<${type}, ${aLen}>;
var<workgroup> bTile: array<${type}, ${bLen}>;
@compute @workgroup_size(${32 * SUBGROUPS})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3u) {
  let sg = t / 32u;
  for (var i = t; i < ${aLen}u; i += ${32 * SUBGROUPS}u) { aTile[i] = src[i % 4096u]; }
  for (var i = t; i < ${bLen}u; i += ${32 * SUBGROUPS}u) { bTile[i] = src[(i + 77u) % 4096u]; }
  workgroupBarrier();
  ${decl.join('\n  ')}
  for (var it = 0u; it < ${ITERS}u; it++) {
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
      const flop = WORKGROUPS * SUBGROUPS * rowsA * colsB * ITERS * 2 * 16 * 16 * 16;
      await time(code, flop, `mma from workgroup: ${rowsA}x${colsB} tiles, ${type} elements, row stride ${aStride}/${bStride} halves`);
    }
  }
}

// The attention's per-block round trip: S = Q·Kᵀ (4 multiplies, Kᵀ from workgroup memory), S stored to a per-subgroup
// f32 scratch and reloaded as a result matrix into O (as the rescale does), P = S's first tile reloaded as f16 pairs
// (an f16 left matrix from a vec2<u32>/f16 scratch is the softmax's P); counts the multiplies only.
for (const [scratchType, perElem] of [['f32', 1], ['vec4<f32>', 4]]) {
  for (const rowPad of [4, 8]) {
    const sStride = 16 + rowPad; // floats
    const code = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<f32>;
var<workgroup> kTile: array<vec4<u32>, ${(64 * 72) / 8}>;
var<workgroup> scratch: array<${scratchType}, ${(SUBGROUPS * 16 * sStride) / perElem}>;
@compute @workgroup_size(${32 * SUBGROUPS})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3u) {
  let sg = t / 32u;
  for (var i = t; i < ${(64 * 72) / 8}u; i += ${32 * SUBGROUPS}u) { kTile[i] = src[i % 512u]; }
  workgroupBarrier();
  let q = subgroupMatrixLoad<${left}, row_major>(&kTile, sg * 9u, 9u);
  var o : ${result};
  for (var it = 0u; it < ${ITERS}u; it++) {
    var s = subgroupMatrixMultiply<f32>(q, subgroupMatrixLoad<${right}, row_major>(&kTile, (it % 4u) * 16u * 9u, 9u));
    s = subgroupMatrixMultiplyAccumulate(q, subgroupMatrixLoad<${right}, row_major>(&kTile, (it % 4u) * 16u * 9u + 2u, 9u), s);
    s = subgroupMatrixMultiplyAccumulate(q, subgroupMatrixLoad<${right}, row_major>(&kTile, (it % 4u) * 16u * 9u + 4u, 9u), s);
    s = subgroupMatrixMultiplyAccumulate(q, subgroupMatrixLoad<${right}, row_major>(&kTile, (it % 4u) * 16u * 9u + 6u, 9u), s);
    subgroupMatrixStore<row_major>(&scratch, sg * ${(16 * sStride) / perElem}u, s, ${sStride / perElem}u);
    let back = subgroupMatrixLoad<${result}, row_major>(&scratch, sg * ${(16 * sStride) / perElem}u, ${sStride / perElem}u);
    o = subgroupMatrixMultiplyAccumulate(q, subgroupMatrixLoad<${right}, row_major>(&kTile, 8u, 9u), back);
  }
  subgroupMatrixStore<row_major>(&sink, ((wid.x * ${SUBGROUPS}u + sg) % 2048u) * 4096u, o, 16u);
}`;
    const flop = WORKGROUPS * SUBGROUPS * ITERS * 5 * 2 * 16 * 16 * 16;
    await time(code, flop, `scores' round trip: 4 multiplies, store S to a ${scratchType} scratch (rows of ${sStride} floats), reload, 1 multiply`);
  }
}

const out = process.argv.indexOf('--json');
if (out > 0) writeFileSync(process.argv[out + 1], JSON.stringify({ results }, null, 1));
console.log('--- summary (TFLOP/s) ---');
for (const r of results) console.log(`${String(r.tflops ?? r.error).padStart(8)}  ${r.label}`);
