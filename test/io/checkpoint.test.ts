import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { ConfigError } from '../../src/errors.js';
import { convertCheckpoint, listCheckpoint, openWeights } from '../../src/io/checkpoint.js';
import { TorchCheckpoint } from '../../src/io/pth.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { bytesOf, PickleBuilder, writeTorchFile } from '../helpers/torch-files.js';
import { errorOf } from '../helpers/errors.js';

describe('io/checkpoint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const expected = 'expected a PyTorch .pth (torch.save zip) or a .safetensors file';
  let pth: string;

  before(() => {
    pth = join(dir, 'tiny.pth');
    // {'model': {'w': torch.arange(6.).view(2, 3).half(), 'b': torch.tensor([0.5, 1.5])}, 'step': 3}
    const p = new PickleBuilder().proto(2).emptyDict().mark().str('model').emptyDict().mark();
    p.str('w').tensor('HalfStorage', '0', 6, 0, [2, 3], [3, 1]);
    p.str('b').tensor('FloatStorage', '1', 2, 0, [2], [1]);
    p.setitems().str('step').int(3).setitems().stop();
    writeTorchFile(pth, {
      folder: 'tiny', pickle: p.bytes(),
      storages: { '0': bytesOf(Uint16Array.from([0, 0x3c00, 0x4000, 0x4200, 0x4400, 0x4500])), '1': bytesOf(Float32Array.from([0.5, 1.5])) },
    });
  });

  it('picks the reader by content, not by file name', () => {
    const a = openWeights(pth);
    expect(a).to.be.instanceOf(TorchCheckpoint);
    a.close();
    const disguised = join(dir, 'weights.pth');
    writeSafetensors(disguised, [{ key: 'x', shape: [1], dtype: 'float32', data: Float32Array.from([2]) }]);
    const b = openWeights(disguised);
    expect(b).to.be.instanceOf(SafetensorsFile);
    expect(Array.from(b.readFloat32('x'))).to.deep.equal([2]);
    b.close();
  });

  it('lists tensors and converts .pth to safetensors keeping names, shapes, dtypes and values', () => {
    expect(listCheckpoint(pth)).to.deep.equal([
      { key: 'w', shape: [2, 3], dtype: 'float16' },
      { key: 'b', shape: [2], dtype: 'float32' },
    ]);
    const out = join(dir, 'tiny.safetensors');
    expect(convertCheckpoint(pth, out)).to.deep.equal({ tensors: 2, bytes: 20 });
    expect(listCheckpoint(out)).to.deep.equal(listCheckpoint(pth));
    const st = openWeights(out);
    expect(Array.from(st.readFloat32('w'))).to.deep.equal([0, 1, 2, 3, 4, 5]);
    expect(st.metadata).to.deep.equal({ format: 'pt', converted_from: 'tiny.pth', source_metadata: '{"step":3}' });
    st.close();
    expect(errorOf(() => convertCheckpoint(pth, pth))).to.equal(`${pth}: output would overwrite the input file`);
    expect(() => convertCheckpoint(pth, out, { dtype: 'half' as 'keep' })).to.throw(ConfigError, `Expected 'keep' or 'float32' for dtype but received "half"`);
  });

  it('rejects files that are not weight files, saying what they look like', () => {
    const text = join(dir, 'notes.pth');
    writeFileSync(text, 'these are not weights\n');
    expect(errorOf(() => openWeights(text))).to.equal(`${text}: not a recognised weight file (it looks like a text file); ${expected}`);
    const random = join(dir, 'random.bin');
    let seed = 12345;
    writeFileSync(random, Uint8Array.from({ length: 4096 }, (_, i) => (i === 0 ? 0x17 : (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24)));
    expect(errorOf(() => openWeights(random))).to.equal(`${random}: not a recognised weight file; ${expected}`);
    const legacy = join(dir, 'legacy.pth');
    // torch < 1.6 files start with a pickled magic number: PROTO 2, LONG1 0x1950a86a20f9469cfc6c
    writeFileSync(legacy, Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]));
    expect(errorOf(() => openWeights(legacy))).to.equal(`${legacy}: legacy (pre-1.6, non-zip) torch.save format or a bare pickle; re-save it with torch>=1.6 (torch.save(state_dict, path)) to get the zip format`);
    const empty = join(dir, 'empty.pth');
    writeFileSync(empty, '');
    expect(errorOf(() => openWeights(empty))).to.equal(`${empty}: empty file, ${expected}`);
    const missing = join(dir, 'missing.pth');
    expect(errorOf(() => openWeights(missing))).to.equal(`${missing}: cannot open weight file (ENOENT)`);
  });
});
