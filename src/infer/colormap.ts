/**
 * Colour maps for depth visualisation: 256-entry RGB lookup tables and the mapping from values to colours.
 *
 * inferno and viridis are the published matplotlib tables (Smith & van der Walt, CC0; `_cm_listed.py`), stored as
 * bytes the way matplotlib's `cmap(x, bytes=True)` (and so `plt.imsave`) makes them: floor(255·v). turbo is computed
 * from Google's published polynomial fit of Turbo (Mikhailov 2019), which differs from the 256-entry Turbo table by a
 * few levels, most at the two ends. grey is the identity ramp.
 */
import { invalidParameterError } from '../errors.js';

export const COLORMAPS = ['inferno', 'turbo', 'viridis', 'grey'] as const;
export type ColormapName = (typeof COLORMAPS)[number];


const INFERNO_HEX =
  '00000300000400000601000701010901010b02010e02021003021204031404031605041806041b07051d08061f090621' +
  '0a07230b07260d08280e082a0f092d10092f120a32130a34140b36160b39170b3b190b3e1a0b401c0c431d0c451f0c47' +
  '200c4a220b4c240b4e260b50270b52290b542b0a562d0a582e0a5a300a5c32095d34095f3509603709613909623b0964' +
  '3c09653e0966400966410967430a68450a69460a69480b6a4a0b6a4b0c6b4d0c6b4f0d6c500d6c520e6c530e6d550f6d' +
  '570f6d58106d5a116d5b116e5d126e5f126e60136e62146e63146e65156e66156e68166e6a176e6b176e6d186e6e186e' +
  '70196e72196d731a6d751b6d761b6d781c6d7a1c6d7b1d6c7d1d6c7e1e6c801f6b811f6b83206b85206a86216a88216a' +
  '8922698b22698d23698e24689024689125679325679526669626669827659928649b28649c29639e2963a02a62a12b61' +
  'a32b61a42c60a62c5fa72d5fa92e5eab2e5dac2f5cae305baf315bb1315ab23259b43358b53357b73456b83556ba3655' +
  'bb3754bd3753be3852bf3951c13a50c23b4fc43c4ec53d4dc73e4cc83e4bc93f4acb4049cc4148cd4247cf4446d04544' +
  'd14643d24742d44841d54940d64a3fd74b3ed94d3dda4e3bdb4f3adc5039dd5238de5337df5436e05634e25733e35832' +
  'e45a31e55b30e65c2ee65e2de75f2ce8612be9622aea6428eb6527ec6726ed6825ed6a23ee6c22ef6d21f06f1ff0701e' +
  'f1721df2741cf2751af37719f37918f47a16f57c15f57e14f68012f68111f78310f7850ef8870df8880cf88a0bf98c09' +
  'f98e08f99008fa9107fa9306fa9506fa9706fb9906fb9b06fb9d06fb9e07fba007fba208fba40afba60bfba80dfbaa0e' +
  'fbac10fbae12fbb014fbb116fbb318fbb51afbb71cfbb91efabb21fabd23fabf25fac128f9c32af9c52cf9c72ff8c931' +
  'f8cb34f8cd37f7cf3af7d13cf6d33ff6d542f5d745f5d948f4db4bf4dc4ff3de52f3e056f3e259f2e45df2e660f1e864' +
  'f1e968f1eb6cf1ed70f1ee74f1f079f1f27df2f381f2f485f3f689f4f78df5f891f6fa95f7fb99f9fc9dfafda0fcfea4';

const VIRIDIS_HEX =
  '44015444025544035745055845065a45085b46095c460b5e460c5f460e61470f62471163471265471466471567471669' +
  '47186a48196b481a6c481c6e481d6f481e70482071482172482273482374472575472676472777472878472a79472b7a' +
  '472c7b462d7c462f7c46307d46317e45327f45347f453580453681443781443982433a83433b83433c84423d84423e85' +
  '4240854141864142864043874044873f45873f47883e48883e49893d4a893d4b893d4c893c4d8a3c4e8a3b508a3b518a' +
  '3a528b3a538b39548b39558b38568b38578c37588c37598c365a8c365b8c355c8c355d8c345e8d345f8d33608d33618d' +
  '32628d32638d31648d31658d31668d30678d30688d2f698d2f6a8d2e6b8e2e6c8e2e6d8e2d6e8e2d6f8e2c708e2c718e' +
  '2c728e2b738e2b748e2a758e2a768e2a778e29788e29798e287a8e287a8e287b8e277c8e277d8e277e8e267f8e26808e' +
  '26818e25828e25838d24848d24858d24868d23878d23888d23898d22898d228a8d228b8d218c8d218d8c218e8c208f8c' +
  '20908c20918c1f928c1f938b1f948b1f958b1f968b1e978a1e988a1e998a1e998a1e9a891e9b891e9c891e9d881e9e88' +
  '1e9f881ea0871fa1871fa2861fa38620a48520a58521a68521a78422a78423a88323a98224aa8225ab8126ac8127ad80' +
  '28ae7f29af7f2ab07e2bb17d2cb17d2eb27c2fb37b30b47a32b57a33b67935b77836b87738b97639b9763bba753dbb74' +
  '3ebc7340bd7242be7144be7045bf6f47c06e49c16d4bc26c4dc26b4fc36951c46853c56755c66657c66559c7645bc862' +
  '5ec96160c96062ca5f64cb5d67cc5c69cc5b6bcd596dce5870ce5672cf5574d05477d05279d1517cd24f7ed24e81d34c' +
  '83d34b86d44988d5478bd5468dd64490d64392d74195d73f97d83e9ad83c9dd93a9fd938a2da37a5da35a7db33aadb32' +
  'addc30afdc2eb2dd2cb5dd2bb7dd29bade27bdde26bfdf24c2df22c5df21c7e01fcae01ecde01dcfe11cd2e11bd4e11a' +
  'd7e219dae218dce218dfe318e1e318e4e318e7e419e9e419ece41aeee51bf1e51cf3e51ef6e61ff8e621fae622fde724';

function fromHex(hex: string): Uint8Array {
  const lut = new Uint8Array(768);
  for (let i = 0; i < 768; i++) lut[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return lut;
}

/** Turbo's published polynomial: red, green, blue as degree-5 polynomials in t (coefficients for 1, t, …, t⁵). */
const TURBO_POLY: readonly (readonly number[])[] = [
  [0.13572138, 4.6153926, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
  [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
  [0.1066733, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
];

function turboLut(): Uint8Array {
  const lut = new Uint8Array(768);
  for (let i = 0; i < 256; i++) {
    const t = i / 255;
    for (let c = 0; c < 3; c++) {
      const v = TURBO_POLY[c]!.reduceRight((acc, k) => acc * t + k, 0);
      lut[3 * i + c] = Math.floor(Math.min(1, Math.max(0, v)) * 255);
    }
  }
  return lut;
}

function greyLut(): Uint8Array {
  const lut = new Uint8Array(768);
  for (let i = 0; i < 256; i++) lut.fill(i, 3 * i, 3 * i + 3);
  return lut;
}

const LUTS: Record<ColormapName, () => Uint8Array> = {
  inferno: () => fromHex(INFERNO_HEX),
  viridis: () => fromHex(VIRIDIS_HEX),
  turbo: turboLut,
  grey: greyLut,
};
const cache = new Map<ColormapName, Uint8Array>();

/** The 256×3 RGB table of a colour map (shared; do not modify it). */
export function colormapLut(name: ColormapName): Uint8Array {
  const make = LUTS[name];
  if (make === undefined) throw invalidParameterError('--colormap', `one of ${COLORMAPS.join(', ')}`, name);
  let lut = cache.get(name);
  if (!lut) {
    lut = make();
    cache.set(name, lut);
  }
  return lut;
}

export function isColormapName(name: string): name is ColormapName {
  return (COLORMAPS as readonly string[]).includes(name);
}

/** A value range used for normalisation; min === max maps everything to the first colour. */
export interface ValueRange {
  min: number;
  max: number;
}

/** min and max over the finite values (NaN/±Inf ignored); {0, 0} when there are none. */
export function finiteRange(values: ArrayLike<number>): ValueRange {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!Number.isFinite(min) || !Number.isFinite(max)) {
    min = Infinity;
    max = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  return Number.isFinite(min) ? { min, max } : { min: 0, max: 0 };
}

/** Grows `range` to include `other` (the running range of a video). */
export function unionRange(range: ValueRange | undefined, other: ValueRange): ValueRange {
  return range === undefined ? { ...other } : { min: Math.min(range.min, other.min), max: Math.max(range.max, other.max) };
}

/**
 * Colours values: t = (v − min) / (max − min) clipped to [0, 1], colour index min(255, floor(256·t)) as matplotlib's
 * ListedColormap does. NaN takes the first colour. Returns H·W·3 RGB bytes.
 */
export function applyColormap(values: ArrayLike<number>, range: ValueRange, name: ColormapName = 'inferno'): Uint8Array {
  const lut = colormapLut(name);
  const out = new Uint8Array(values.length * 3);
  const span = range.max - range.min;
  const scale = span > 0 ? 256 / span : 0;
  for (let i = 0; i < values.length; i++) {
    const x = (values[i]! - range.min) * scale;
    const k = x >= 255 ? 255 : x > 0 ? Math.floor(x) : 0;
    out[3 * i] = lut[3 * k]!;
    out[3 * i + 1] = lut[3 * k + 1]!;
    out[3 * i + 2] = lut[3 * k + 2]!;
  }
  return out;
}
