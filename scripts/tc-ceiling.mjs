// GPU-host probe: the ceilings of WGSL on this adapter, without tfjs. How fast do subgroup-matrix (tensor-core)
// multiply-accumulates run when their operands are already in registers, re-read from workgroup memory, or re-read
// from a storage buffer — and plain fp32 FMAs for scale. Settles whether the ~20 TFLOP/s of every tensor-core kernel
// so far is the MMA path itself or the loads around it.
// With --forms, only the workgroup-memory forms instead: multiplies whose operands are loaded from workgroup memory by
// the array's element type (f16, u32 or vec4<u32>: offsets and strides counted in those) and row stride (a multiple of
// 128 bytes, where a 16×16 matrix's rows share banks, or padded by 16 bytes), and an f32 accumulator's round trip
// through a scratch (f32 or vec4<f32> rows of 20 or 24 floats), as the attention's scores and the matmul's epilogue
// make (H100 lease 22B: vec4<u32> tiles 262 TFLOP/s, u32 or f16 ones ~600, in 8 subgroups of 2×4 tiles).
// Usage (GPU host, after `source .gpu/env.sh`): node scripts/tc-ceiling.mjs [--forms] [--json out.json]
// FLASHDEPTH_DAWN_FEATURES=disable_robustness adds that toggle (as the models run).
import { createRequire } from 'module';
import { writeFileSync } from 'fs';
const require = createRequire(process.cwd() + '/');
const { create, globals } = require('webgpu');
Object.assign(globalThis, globals);

const extra = process.env.FLASHDEPTH_DAWN_FEATURES ? ',' + process.env.FLASHDEPTH_DAWN_FEATURES : '';
const gpu = create([`enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia${extra}`]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
const configs = (adapter.info.subgroupMatrixConfigs || []).map((c) => ({ comp: c.componentType, res: c.resultComponentType, M: c.M, N: c.N, K: c.K }));
console.log('adapter', adapter.info.vendor, adapter.info.architecture, adapter.info.description);
console.log('configs', JSON.stringify(configs));
const device = await adapter.requestDevice({
  requiredFeatures: ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix', 'timestamp-query'].filter((f) => adapter.features.has(f)),
  requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize },
});
let gpuError = null;
device.onuncapturederror = (e) => { gpuError = e.error.message; console.log('GPU error', e.error.message); };

const WORKGROUPS = 132 * 16;
const results = [];

// `warm`: untimed dispatches first (enough for the clock, which idles at 345 MHz, where each is short).
async function time(code, workgroupSize, bindings, flop, label, dispatches = 3, warm = 1, workgroups = WORKGROUPS) {
  gpuError = null;
  const module = device.createShaderModule({ code });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) { console.log(label, 'WGSL error', errors.map((m) => `${m.lineNum}: ${m.message}`).join(' | ')); results.push({ label, error: errors[0].message }); return; }
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bindGroup = bindings.length ? device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: bindings.map((buffer, binding) => ({ binding, resource: { buffer } })) }) : null;
  const run = async (n) => {
    const encoder = device.createCommandEncoder();
    for (let r = 0; r < n; r++) {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      if (bindGroup) pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(workgroups);
      pass.end();
    }
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await run(warm);
  const t0 = performance.now();
  await run(dispatches);
  const ms = (performance.now() - t0) / dispatches;
  const tflops = flop / ms / 1e9;
  const row = { label, ms: +ms.toFixed(3), tflops: +tflops.toFixed(1), error: gpuError ?? undefined };
  results.push(row);
  console.log(JSON.stringify(row));
}

const sink = device.createBuffer({ size: 64 << 20, usage: GPUBufferUsage.STORAGE });
const source = device.createBuffer({ size: 1 << 20, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
device.queue.writeBuffer(source, 0, new Uint16Array(1 << 19).map((_, i) => 0x3c00 + (i % 7))); // f16 1.0 … 1.006

if (!process.argv.includes('--forms')) {
// fp32 FMA ceiling: 8 independent vec4 chains per invocation.
{
  const iters = 4096;
  const code = `
@group(0) @binding(0) var<storage, read_write> sink: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  var a0 = vec4<f32>(f32(gid.x)); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
  var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
  let m = vec4<f32>(0.999); let c = vec4<f32>(0.001);
  for (var i = 0u; i < ${iters}u; i++) {
    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
  }
  sink[gid.x % 4194304u] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}`;
  await time(code, 256, [sink], WORKGROUPS * 256 * iters * 8 * 4 * 2, 'fp32 fma (vec4 x8 chains)');
}

// Subgroup-matrix MMA: T = independent accumulators per subgroup, operands from registers / workgroup / storage.
const f16Configs = configs.filter((c) => c.comp === 'f16');
for (const cfg of f16Configs) {
  const { M, N, K, res } = cfg;
  const left = `subgroup_matrix_left<f16, ${K}, ${M}>`;
  const right = `subgroup_matrix_right<f16, ${N}, ${K}>`;
  const result = `subgroup_matrix_result<${res}, ${N}, ${M}>`;
  const storeType = res === 'f16' ? 'f16' : 'f32';
  for (const [operands, tiles, subgroups] of [['reg', 1, 4], ['reg', 4, 4], ['reg', 8, 4], ['reg', 8, 8], ['wg', 4, 4], ['wg', 8, 4], ['wg', 8, 8], ['storage', 8, 4]]) {
    const iters = 1024;
    const rowsA = tiles >= 2 ? 2 : 1; // left tiles
    const colsB = tiles / rowsA;
    const lds = [];
    const load = (kind, i, it) => {
      const type = kind === 'a' ? left : right;
      if (operands === 'wg') return `subgroupMatrixLoad<${type}>(&${kind}Tile, ${kind === 'a' ? `${i * M}u * 64u + (${it} % 4u) * ${K}u` : `(${it} % 4u) * ${K}u * 128u + ${i * N}u`}, false, ${kind === 'a' ? 64 : 128}u)`;
      return `subgroupMatrixLoad<${type}>(&src, ${kind === 'a' ? `${i * M}u * 64u + (${it} % 4u) * ${K}u` : `16384u + (${it} % 4u) * ${K}u * 128u + ${i * N}u`} + sg * 1024u, false, ${kind === 'a' ? 64 : 128}u)`;
    };
    const body = [];
    const decl = [];
    if (operands === 'reg') {
      for (let i = 0; i < rowsA; i++) decl.push(`let a${i} = subgroupMatrixLoad<${left}>(&src, sg * 1024u + ${i * M * 64}u, false, 64u);`);
      for (let j = 0; j < colsB; j++) decl.push(`let b${j} = subgroupMatrixLoad<${right}>(&src, 16384u + sg * 1024u + ${j * N}u, false, 128u);`);
    } else {
      for (let i = 0; i < rowsA; i++) body.push(`let a${i} = ${load('a', i, 'it')};`);
      for (let j = 0; j < colsB; j++) body.push(`let b${j} = ${load('b', j, 'it')};`);
    }
    for (let i = 0; i < rowsA; i++) for (let j = 0; j < colsB; j++) {
      decl.push(`var acc${i}_${j} : ${result};`);
      body.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
    }
    const stores = [];
    for (let i = 0; i < rowsA; i++) for (let j = 0; j < colsB; j++) stores.push(`subgroupMatrixStore(&sink, ((wid.x * ${subgroups}u + sg) % 4096u) * 2048u + ${(i * colsB + j) * M * N}u, acc${i}_${j}, false, ${N}u);`);
    const threads = 32 * subgroups;
    const code = `
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read> src: array<f16>;
@group(0) @binding(1) var<storage, read_write> sink: array<${storeType}>;
var<workgroup> aTile: array<f16, ${64 * 64}>;
var<workgroup> bTile: array<f16, ${64 * 128}>;
@compute @workgroup_size(${threads})
fn main(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3u) {
  let sg = t / 32u;
  for (var i = t; i < ${64 * 64}u; i += ${threads}u) { aTile[i] = src[i]; }
  for (var i = t; i < ${64 * 128}u; i += ${threads}u) { bTile[i] = src[16384u + i]; }
  workgroupBarrier();
  ${decl.join('\n  ')}
  for (var it = 0u; it < ${iters}u; it++) {
    ${body.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
    const flop = WORKGROUPS * subgroups * tiles * iters * 2 * M * N * K;
    const label = `mma ${M}x${N}x${K} ${res} operands=${operands} tiles=${tiles} subgroups=${subgroups}`;
    await time(code, threads, [source, sink], flop, label);
  }
}

}

if (process.argv.includes('--forms')) {
// --forms: operands from workgroup memory by the array's form; 8 subgroups per workgroup, 8 workgroups per multiprocessor.
const FORM_WORKGROUPS = 132 * 8;
const ITERS = 1024;
const SUBGROUPS = 8;
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
      const flop = FORM_WORKGROUPS * SUBGROUPS * rowsA * colsB * ITERS * 2 * 16 * 16 * 16;
      await time(code, 32 * SUBGROUPS, [source, sink], flop, `mma from workgroup: ${rowsA}x${colsB} tiles, ${type} elements, row stride ${aStride}/${bStride} halves`, 10, 20, FORM_WORKGROUPS);
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
    const flop = FORM_WORKGROUPS * SUBGROUPS * ITERS * 5 * 2 * 16 * 16 * 16;
    await time(code, 32 * SUBGROUPS, [source, sink], flop, `scores' round trip: 4 multiplies, store S to a ${scratchType} scratch (rows of ${sStride} floats), reload, 1 multiply`, 10, 20, FORM_WORKGROUPS);
  }
}

}

const out = process.argv.indexOf('--json');
if (out > 0) writeFileSync(process.argv[out + 1], JSON.stringify({ configs, results, features: [...adapter.features] }, null, 1));
console.log('--- summary (TFLOP/s) ---');
for (const r of results) console.log(`${String(r.tflops ?? r.error).padStart(8)}  ${r.label}`);
