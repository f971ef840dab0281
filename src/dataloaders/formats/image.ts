/**
 * Image decoding through sharp: 8-bit RGB (PNG/JPEG, EXIF orientation applied as cv2.imread does), 16-bit grey PNG,
 * DynamicReplica's float16-in-uint16 PNG and single-channel label PNGs.
 */
import sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { InputError } from '../../errors.js';
import { float16ToFloat32 } from '../../io/half.js';
import type { FloatMap, RgbImage } from './types.js';

function cause(e: unknown): string {
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}

/** Decodes a PNG or JPEG to 8-bit RGB (alpha dropped, grey expanded), like `cv2.imread` + BGR→RGB. */
export async function readRgb(file: string): Promise<RgbImage> {
  try {
    const { data, info } = await sharp(file).rotate().removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded ${info.channels} channels`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    throw new InputError(`${file}: cannot decode RGB image (${cause(e)})`);
  }
}

/** Width and height of an image after EXIF orientation, without decoding its pixels. */
export async function imageSize(file: string): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(file).metadata();
    if (m.width === undefined || m.height === undefined) throw new Error('no size in header');
    const swap = (m.orientation ?? 1) >= 5;
    return swap ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
  } catch (e) {
    throw new InputError(`${file}: cannot read image size (${cause(e)})`);
  }
}

/** Decodes a single-channel 16-bit PNG to its raw uint16 values. */
export async function readPng16(file: string): Promise<{ width: number; height: number; data: Uint16Array }> {
  let out: { data: Buffer; info: OutputInfo };
  try {
    const meta = await sharp(file).metadata();
    if (meta.channels !== 1 && meta.channels !== 2) throw new Error(`expected a single-channel PNG, found ${meta.channels} channels`);
    if (meta.depth !== 'ushort') throw new Error(`expected 16-bit samples, found ${meta.depth}`);
    out = await sharp(file).toColourspace('grey16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new InputError(`${file}: cannot decode 16-bit PNG (${cause(e)})`);
  }
  const { data, info } = out;
  const n = info.width * info.height;
  const all = new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length));
  // grey16 with an alpha channel still comes back interleaved; keep the grey samples.
  const data16 = info.channels === 1 ? all : Uint16Array.from({ length: n }, (_, i) => all[i * info.channels]!);
  return { width: info.width, height: info.height, data: data16 };
}

/** DynamicReplica depth: a uint16 PNG whose sample bits are IEEE float16 depth values. */
export async function readFloat16Png(file: string): Promise<FloatMap> {
  const { width, height, data } = await readPng16(file);
  return { width, height, data: float16ToFloat32(data) };
}

/** Decodes a label PNG (8- or 16-bit) to one integer per pixel; RGB labels must have equal channels. */
export async function readLabelPng(file: string): Promise<{ width: number; height: number; data: Uint16Array }> {
  let out: { data: Buffer; info: OutputInfo };
  let sixteen = false;
  try {
    const meta = await sharp(file).metadata();
    sixteen = meta.depth === 'ushort';
    out = await sharp(file).removeAlpha().raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new InputError(`${file}: cannot decode label PNG (${cause(e)})`);
  }
  const { data, info } = out;
  const src = sixteen ? new Uint16Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)) : data;
  const n = info.width * info.height;
  const labels = new Uint16Array(n);
  const c = info.channels;
  for (let i = 0; i < n; i++) {
    const v = src[i * c]!;
    if (c >= 3 && (src[i * c + 1] !== v || src[i * c + 2] !== v)) {
      throw new InputError(`${file}: label PNG has unequal colour channels at pixel (${i % info.width}, ${Math.floor(i / info.width)}); expected a grey label map`);
    }
    labels[i] = v;
  }
  return { width: info.width, height: info.height, data: labels };
}
