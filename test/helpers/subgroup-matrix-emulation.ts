/**
 * Plain-WGSL stand-ins for the `chromium_experimental_subgroup_matrix` builtins, so that the tensor-core programs
 * (src/kernels/tc-*_webgpu.ts) can be checked on a device without subgroup matrices — Mesa lavapipe in CI.
 *
 * The programs treat invocations 32·s … 32·s + 31 as subgroup s (what `webgpuCapabilities().subgroupMatrix` promises),
 * so the emulation spreads each 16×16 matrix over those 32 "lanes" (lane = localIndex % 32) by what each lane needs:
 * a result matrix keeps elements lane + 32·r (r = 0…7: rows lane/16 + 2r, column lane % 16), a left matrix those 8
 * rows, a right matrix that column. A multiply then costs a lane 8 dot products of 16, a store writes each element
 * from exactly one lane, and indexing, strides, column-major loads, padding, masking and barriers are all exercised.
 * What it cannot model:
 * - `subgroupAny` over 32 invocations (lavapipe's subgroups have 8): it is replaced by `true`, so the attention's lazy
 *   rescale runs on every block after the first (exact: rows whose maximum did not rise are scaled by 1). A constant
 *   is uniform to Tint where a real vote's result is not, so the card's subgroup-uniformity errors (a subgroup builtin
 *   under a branch on a vote) do not show here either: the mode tests check the shader text for them.
 * - Timing, and the memory-ordering behaviour of real subgroup-matrix instructions. Where a program relies on a real
 *   subgroup's program order (`subgroupScratchSync()` calls, tc-attention_webgpu.ts and tc-matmul_webgpu.ts), the emulated subgroup gets a
 *   workgroupBarrier instead — so only the card checks that reliance (kernel-check.js).
 * Loop bounds are read at run time (`emu16()`), which keeps the shader compiler from unrolling the loops at every call
 * site (seconds instead of minutes of compilation on lavapipe).
 */

import { SUBGROUP_SCRATCH_SYNC } from '../../src/kernels/tc-matmul_webgpu.js';

export function emulateSubgroupMatrices(code: string): string {
  if (!code.includes('chromium_experimental_subgroup_matrix')) return code;
  let out = code
    .replace(/^\s*enable chromium_experimental_subgroup_matrix;\s*$/m, '')
    .replace(/^\s*diagnostic\(off, chromium\.subgroup_matrix_uniformity\);\s*$/m, '');
  const loads = new Set<string>();
  const stores = new Set<string>();
  // Majorness is a template argument; offset and stride count elements of the array, which may hold the matrix's
  // halves packed in u32s or u32 vectors (u32: 2 halves, vec4<u32>: 8, vec2<u32>: 4) or its floats in vec4<f32>s.
  out = out.replace(/subgroupMatrixLoad<subgroup_matrix_(left|right|result)<(?:f16|f32), 16, 16>, (row|col)_major>\(&(\w+), ([^,]+), /g,
    (_m, kind: string, major: string, array: string, offset: string) => {
      loads.add(`${kind}|${array}`);
      return `smLoad_${kind}_${array}(${offset}, ${major === 'col'}, `;
    });
  out = out.replace(/subgroupMatrixStore<(row|col)_major>\(&(\w+), ([^,]+), ([^,]+), /g, (_m, major: string, array: string, offset: string, matrix: string) => {
    stores.add(array);
    return `smStore_${array}(${offset}, ${matrix}, ${major === 'col'}, `;
  });
  const elementType = (array: string): string => {
    const type = new RegExp(`var(?:<[^>]*>)?\\s+${array}\\s*:\\s*array<(vec\\d<\\w+>|\\w+)`).exec(code)?.[1];
    if (type === undefined) throw new Error(`emulateSubgroupMatrices: no declaration of ${array}`);
    return type;
  };
  // Matrix elements (halves or floats) per element of each array the helpers use (1 for f16/f32 arrays).
  const elementsPer = (array: string): number => ({ 'vec4<u32>': 8, 'vec2<u32>': 4, u32: 2, 'vec4<f32>': 4 } as Record<string, number>)[elementType(array)] ?? 1;
  // The f32 matrix element `index` of a plain f32 array or of one of vec4<f32>s (assignable: the stores write it).
  const floatAt = (array: string, index: string): string =>
    (elementType(array) === 'vec4<f32>' ? `${array}[(${index}) / 4u][(${index}) % 4u]` : `${array}[${index}]`);
  // Matrix element `index` of an array, as f32: halves packed in u32 vectors, f16s, or floats.
  const read = (array: string, index: string): string => {
    const type = elementType(array);
    if (type === 'f32' || type === 'vec4<f32>') return floatAt(array, index);
    const per = elementsPer(array);
    return per === 1 ? `f32(${array}[${index}])` : `emuHalf${per}(${array}[(${index}) / ${per}u], (${index}) % ${per}u)`;
  };
  out = out
    .replace(/subgroupMatrixMultiply<f32>\(/g, 'smMul(')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'smMma(')
    .replace(/subgroup_matrix_result<f32, 16, 16>/g, 'SMresult')
    .replace(/subgroupAny\(/g, 'emulatedAny(')
    // A subgroup's own memory round trips: program order on a real subgroup, a barrier across the emulated one.
    .replace(new RegExp(`\\b${SUBGROUP_SCRATCH_SYNC}\\(\\);`, 'g'), 'workgroupBarrier();');
  if (/subgroup_matrix_|subgroupMatrix/.test(out)) throw new Error('emulateSubgroupMatrices: a subgroup-matrix form it does not know is left in the shader');
  // Row and column of a lane's r-th result element; a left matrix's r-th row is the same row.
  const row = '(localIndex % 32u) / 16u + 2u * r';
  const col = '(localIndex % 32u) % 16u';
  const at = (i: string, j: string) => `select(off + (${i}) * stride + (${j}), off + (${j}) * stride + (${i}), colMajor)`;
  const loop = (v: string, body: string) => `for (var ${v} = 0u; ${v} < emu${v === 'r' ? 8 : 16}(); ${v}++) { ${body} }`;
  const helpers = [
    'struct SMleft { v : array<f32, 128> }',
    'struct SMright { v : array<f32, 16> }',
    'struct SMresult { v : array<f32, 8> }',
    // numWorkgroups is tfjs' private copy of the dispatch size (≥ 1): the bounds at run time, unknown to the compiler.
    'fn emu16() -> u32 { return 16u * min(numWorkgroups.x, 1u); }',
    'fn emu8() -> u32 { return 8u * min(numWorkgroups.x, 1u); }',
    'fn emulatedAny(x : bool) -> bool { return true; }',
    'fn emuHalf8(v : vec4<u32>, h : u32) -> f32 { return unpack2x16float(v[h / 2u])[h % 2u]; }',
    'fn emuHalf4(v : vec2<u32>, h : u32) -> f32 { return unpack2x16float(v[h / 2u])[h % 2u]; }',
    'fn emuHalf2(v : u32, h : u32) -> f32 { return unpack2x16float(v)[h]; }',
    `fn smMma(a : SMleft, b : SMright, c : SMresult) -> SMresult { var d = c; ${loop('r', `var acc = d.v[r]; ${loop('k', 'acc = acc + a.v[r * 16u + k] * b.v[k];')} d.v[r] = acc;`)} return d; }`,
    'fn smMul(a : SMleft, b : SMright) -> SMresult { var zero : SMresult; return smMma(a, b, zero); }',
    ...[...loads].map((key) => {
      const [kind, array] = key.split('|') as [string, string];
      const body = kind === 'left' ? loop('r', loop('k', `m.v[r * 16u + k] = ${read(array, at(row, 'k'))};`))
        : kind === 'right' ? loop('k', `m.v[k] = ${read(array, at('k', col))};`)
        : loop('r', `m.v[r] = ${read(array, at(row, col))};`);
      // Offset and stride in elements of the array → in halves.
      const per = elementsPer(array);
      return `fn smLoad_${kind}_${array}(offset : u32, colMajor : bool, elementStride : u32) -> SM${kind} { let off = offset * ${per}u; let stride = elementStride * ${per}u; var m : SM${kind}; ${body} return m; }`;
    }),
    ...[...stores].map((array) => `fn smStore_${array}(offset : u32, m : SMresult, colMajor : bool, elementStride : u32) { let off = offset * ${elementsPer(array)}u; let stride = elementStride * ${elementsPer(array)}u; ${loop('r', `${floatAt(array, at(row, col))} = m.v[r];`)} }`),
  ];
  // Module-scope functions may follow their callers; appended, they come after the arrays they use.
  return `${out}\n${helpers.join('\n')}\n`;
}
