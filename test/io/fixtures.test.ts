/**
 * The PyTorch parity fixtures' weight files (written by torch.save in ../shared/fixtures, see its README "Weights"):
 * names, shapes and dtypes against the reference key lists, value ranges from the fixture init table, and a
 * bit-exact .pth → safetensors → read-back round trip.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { convertCheckpoint, listCheckpoint, openWeights } from '../../src/io/checkpoint.js';
import { openTorchCheckpoint } from '../../src/io/pth.js';
import { openSafetensors, SafetensorsFile } from '../../src/io/safetensors.js';
import { fixture, FIXTURES_DIR } from '../helpers/fixtures.js';

/** Parses a flashdepth-keys list: `name\t(d0, d1, ...)\ttorch.dtype` per line. */
function referenceKeys(name: string): Array<{ key: string; shape: number[] }> {
  const file = resolve(FIXTURES_DIR, '..', 'docs', 'flashdepth-keys', name);
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => {
    const [key, shape] = l.split('\t');
    return { key: key!, shape: shape!.replace(/[()\s]/g, '').split(',').filter((d) => d !== '').map(Number) };
  });
}

const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

function range(values: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

describe('io: PyTorch fixture checkpoints', () => {
  it('s_model.pth: the 305 FlashDepth-S tensors, names and shapes exactly as keys_S.txt, all float16', function () {
    const ckpt = openTorchCheckpoint(fixture(this, 's_model.pth'));
    try {
      const ref = referenceKeys('keys_S.txt');
      expect(ref).to.have.length(305);
      expect(ckpt.keys().map((key) => ({ key, shape: ckpt.info(key).shape }))).to.deep.equal(ref);
      expect(new Set(ckpt.keys().map((k) => ckpt.info(k).dtype))).to.deep.equal(new Set(['float16']));
      expect(ckpt.keys().reduce((n, k) => n + numel(ckpt.info(k).shape), 0)).to.equal(25_268_833);
      expect(ckpt.metadata).to.deep.equal({ step: 0 });
    } finally {
      ckpt.close();
    }
  });

  it('s_model.pth: values lie in the ranges of the fixture init table', function () {
    const ckpt = openTorchCheckpoint(fixture(this, 's_model.pth'));
    try {
      let checked = 0;
      for (const key of ckpt.keys()) {
        const values = ckpt.readFloat32(key);
        expect(values.length, key).to.equal(numel(ckpt.info(key).shape));
        const [lo, hi] = range(values);
        let bounds: [number, number];
        // init table: LayerNorm/RMSNorm weight 1+0.2u; LayerScale gamma 1+0.3u; A_log (u+1)/2·ln16; dt_bias −4.6+2.3u;
        // D 1+0.3u; other 1-D 0.1u; pos_embed/cls/mask 0.02·√3·u. float16 rounding adds < 2e-3.
        if (/norm\d?\.weight$/.test(key)) bounds = [0.8, 1.2];
        else if (key.endsWith('.gamma') || key.endsWith('.D')) bounds = [0.7, 1.3];
        else if (key.endsWith('.A_log')) bounds = [0, Math.log(16)];
        else if (key.endsWith('.dt_bias')) bounds = [-6.9, -2.3];
        else if (/(pos_embed|cls_token|mask_token)$/.test(key)) bounds = [-0.02 * Math.sqrt(3), 0.02 * Math.sqrt(3)];
        else if (ckpt.info(key).shape.length === 1) bounds = [-0.1, 0.1];
        else continue;
        expect(lo, `${key} min`).to.be.at.least(bounds[0] - 2e-3);
        expect(hi, `${key} max`).to.be.at.most(bounds[1] + 2e-3);
        if (values.length >= 8) expect(hi - lo, `${key} spread`).to.be.greaterThan(0.25 * (bounds[1] - bounds[0]));
        checked++;
      }
      expect(checked).to.be.greaterThan(150);
    } finally {
      ckpt.close();
    }
  });

  it('l_reduced_model.pth: FlashDepth-L names minus blocks 8–23, real mamba.* shapes, 17,212,897 params', function () {
    const ckpt = openTorchCheckpoint(fixture(this, 'l_reduced_model.pth'));
    try {
      const ref = referenceKeys('keys_L.txt').filter((r) => !/^pretrained\.blocks\.([89]|1\d|2[0-3])\./.test(r.key));
      expect(ckpt.keys()).to.deep.equal(ref.map((r) => r.key));
      for (const r of ref.filter((x) => x.key.startsWith('mamba.'))) expect(ckpt.info(r.key).shape, r.key).to.deep.equal(r.shape);
      expect(ckpt.info('pretrained.blocks.0.attn.qkv.weight')).to.deep.equal({ shape: [384, 128], dtype: 'float16' });
      expect(ckpt.keys().reduce((n, k) => n + numel(ckpt.info(k).shape), 0)).to.equal(17_212_897);
      const [lo, hi] = range(ckpt.readFloat32('mamba.blocks.0.3.mamba.A_log'));
      expect(lo).to.be.at.least(0);
      expect(hi).to.be.at.most(Math.log(16) + 2e-3);
    } finally {
      ckpt.close();
    }
  });

  it('full_extra_model.pth: the 64 hybrid_fusion tensors of keys_Full.txt, 199,424 params', function () {
    const list = listCheckpoint(fixture(this, 'full_extra_model.pth'));
    const ref = referenceKeys('keys_Full.txt').filter((r) => r.key.startsWith('hybrid_fusion.'));
    expect(list.map(({ key, shape }) => ({ key, shape }))).to.deep.equal(ref);
    expect(list).to.have.length(64);
    expect(list.every((t) => t.dtype === 'float16')).to.equal(true);
    expect(list.reduce((n, t) => n + numel(t.shape), 0)).to.equal(199_424);
  });

  for (const [dir, dModel, dInner] of [['mamba2_s', 64, 256], ['mamba2_l', 256, 512]] as const) {
    it(`${dir}/weights.pth: a bare float32 Mamba2 state_dict`, function () {
      const ckpt = openTorchCheckpoint(fixture(this, dir, 'weights.pth'));
      try {
        const conv = dInner + 512; // d_inner + 2·d_state, d_state 256
        expect(ckpt.keys().map((k) => [k, ckpt.info(k).shape])).to.deep.equal([
          ['dt_bias', [8]], ['A_log', [8]], ['D', [8]], ['in_proj.weight', [2 * dInner + 512 + 8, dModel]],
          ['conv1d.weight', [conv, 1, 4]], ['conv1d.bias', [conv]], ['norm.weight', [dInner]], ['out_proj.weight', [dModel, dInner]],
        ]);
        expect(ckpt.keys().every((k) => ckpt.info(k).dtype === 'float32')).to.equal(true);
        const [lo, hi] = range(ckpt.readFloat32('A_log'));
        expect(lo).to.be.at.least(0);
        expect(hi).to.be.at.most(Math.log(16));
        const [nlo, nhi] = range(ckpt.readFloat32('norm.weight'));
        expect(nlo).to.be.at.least(0.8);
        expect(nhi).to.be.at.most(1.2);
      } finally {
        ckpt.close();
      }
    });
  }

  describe('.pth → safetensors → read back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'convert-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    const files = ['s_model.pth', 'l_reduced_model.pth', 'full_extra_model.pth', 'mamba2_s/weights.pth', 'mamba2_l/weights.pth'];
    for (const file of files) {
      it(`${file}: every tensor bit-exact, same names, shapes and dtypes`, function () {
        const input = fixture(this, ...file.split('/'));
        const output = join(dir, file.replace(/\W/g, '_') + '.safetensors');
        const report = convertCheckpoint(input, output);
        const pth = openTorchCheckpoint(input);
        const st = openSafetensors(output);
        try {
          expect(st.keys()).to.deep.equal(pth.keys());
          expect(report.tensors).to.equal(pth.keys().length);
          let bytes = 0;
          for (const key of pth.keys()) {
            expect(st.info(key), key).to.deep.equal(pth.info(key));
            const a = pth.readRaw(key);
            const b = st.readRaw(key);
            bytes += a.byteLength;
            expect(Buffer.compare(Buffer.from(a), Buffer.from(b)), key).to.equal(0);
          }
          expect(report.bytes).to.equal(bytes);
          expect(st.metadata['format']).to.equal('pt');
          expect(st.metadata['converted_from']).to.equal(file.split('/').pop());
        } finally {
          pth.close();
          st.close();
        }
      });
    }

    it('--dtype float32 widens float16 to the exact float32 values', function () {
      const input = fixture(this, 'full_extra_model.pth');
      const output = join(dir, 'full_extra_f32.safetensors');
      const report = convertCheckpoint(input, output, { dtype: 'float32' });
      expect(report).to.deep.equal({ tensors: 64, bytes: 199_424 * 4 });
      const pth = openWeights(input);
      const st = openWeights(output);
      try {
        if (!(st instanceof SafetensorsFile)) throw new Error('openWeights did not pick the safetensors reader');
        for (const key of pth.keys()) {
          expect(st.info(key)).to.deep.equal({ shape: pth.info(key).shape, dtype: 'float32' });
          expect(Array.from(st.readFloat32(key)), key).to.deep.equal(Array.from(pth.readFloat32(key)));
        }
        expect(JSON.parse(st.metadata['source_metadata']!)).to.deep.equal({ step: 0 });
      } finally {
        pth.close();
        st.close();
      }
    });
  });
});
