import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import {
  FULL_REDUCED_TEACHER_OVERRIDES,
  L_REDUCED_OVERRIDES,
  VARIANTS,
  VIT_SIZES,
  modelSpecFromConfig,
  variantByName,
} from '../src/models/variants.js';
import { REPO_ROOT } from './helpers/fixtures.js';

const load = (name: string, overrides: readonly string[] = []) => loadConfig(join(REPO_ROOT, 'configs', name), overrides);

describe('models/variants', () => {
  it('FlashDepth-S: ViT-S taps [2,5,8,11], DPT 64/[48,96,192,384], Mamba expand 4 headdim 32, 8 heads', () => {
    const spec = modelSpecFromConfig(load('flashdepth-s'));
    expect(spec.vit).to.deep.include({ size: 'vits', embedDim: 384, depth: 12, numHeads: 6, headDim: 64, mlpHidden: 1536, patchSize: 14, layerNormEps: 1e-6 });
    expect(spec.vit.taps).to.deep.equal([2, 5, 8, 11]);
    expect(spec.dpt).to.deep.equal({ features: 64, outChannels: [48, 96, 192, 384] });
    expect(spec.mamba).to.deep.include({ dModel: 64, numLayers: 4, dState: 256, dConv: 4, expand: 4, headdim: 32, dInner: 256, nheads: 8, ngroups: 1, convDim: 768, chunkSize: 256, mlpHidden: 256 });
    expect(spec.mamba!.inDptLayer).to.deep.equal([1]);
    expect(spec.mamba!.downsample).to.deep.equal([0.1]);
    expect(spec.hybrid).to.equal(null);
  });

  it('FlashDepth-L: ViT-L taps [4,11,17,23], DPT 256/[256,512,1024,1024], Mamba expand 2 headdim 64', () => {
    const spec = modelSpecFromConfig(load('flashdepth-l'));
    expect(spec.vit).to.deep.include({ size: 'vitl', embedDim: 1024, depth: 24, numHeads: 16, headDim: 64 });
    expect(spec.vit.taps).to.deep.equal([4, 11, 17, 23]);
    expect(spec.dpt).to.deep.equal({ features: 256, outChannels: [256, 512, 1024, 1024] });
    expect(spec.mamba).to.deep.include({ dModel: 256, expand: 2, headdim: 64, dInner: 512, nheads: 8, convDim: 1024 });
    expect(spec.mamba!.inDptLayer).to.deep.equal([3]);
  });

  it('FlashDepth Full: ViT-S student, ViT-L teacher at 490, fusion 4 blocks × 2 heads on path_4', () => {
    const spec = modelSpecFromConfig(load('flashdepth'));
    expect(spec.vit.size).to.equal('vits');
    expect(spec.mamba!.inDptLayer).to.deep.equal([1]);
    const h = spec.hybrid!;
    expect(h.teacherResolution).to.equal(490);
    expect(h.teacher.vit).to.deep.include({ size: 'vitl', embedDim: 1024, depth: 24, numHeads: 16 });
    expect(h.teacher.vit.taps).to.deep.equal([4, 11, 17, 23]);
    expect(h.teacher.dpt).to.deep.equal({ features: 256, outChannels: [256, 512, 1024, 1024] });
    expect(h.fusion).to.deep.equal({ dModel: 64, contextDim: 256, numBlocks: 4, numHeads: 2, mlpExpand: 2, layerNormEps: 1e-5, layersToSkip: [1, 2, 3], fusedPaths: [0] });
  });

  it('l_reduced fixture: ViT 128/8/2 with taps [1,3,5,7], out_channels [32,64,128,128], Mamba unchanged', () => {
    const spec = modelSpecFromConfig(load('flashdepth-l', L_REDUCED_OVERRIDES));
    expect(spec.vit).to.deep.include({ embedDim: 128, depth: 8, numHeads: 2, headDim: 64, mlpHidden: 512 });
    expect(spec.vit.taps).to.deep.equal([1, 3, 5, 7]);
    expect(spec.dpt).to.deep.equal({ features: 256, outChannels: [32, 64, 128, 128] });
    expect(spec.mamba).to.deep.include({ dModel: 256, expand: 2, headdim: 64, nheads: 8 });
  });

  it('full fixture: reduced teacher at 98 px, student untouched', () => {
    const spec = modelSpecFromConfig(load('flashdepth', FULL_REDUCED_TEACHER_OVERRIDES));
    expect(spec.vit).to.deep.include({ embedDim: 384, depth: 12 });
    expect(spec.hybrid!.teacher.vit).to.deep.include({ embedDim: 128, depth: 8, numHeads: 2 });
    expect(spec.hybrid!.teacher.dpt.outChannels).to.deep.equal([32, 64, 128, 128]);
    expect(spec.hybrid!.teacherResolution).to.equal(98);
  });

  it('tables: DA-V2 vitb/vitg sizes, and the variant names', () => {
    expect(VIT_SIZES.vitb).to.deep.include({ embedDim: 768, depth: 12, numHeads: 12, dptFeatures: 128 });
    expect(VIT_SIZES.vitg.taps).to.deep.equal([9, 19, 29, 39]);
    expect(VARIANTS.full.configDir).to.equal('flashdepth');
    expect(() => variantByName('xl')).to.throw(ConfigError, 'unknown variant "xl"; expected one of s, l, full');
  });

  it('inconsistent architecture settings fail naming the key', () => {
    expect(() => modelSpecFromConfig(load('flashdepth-l', ['model.vit_depth=8']))).to.throw(
      ConfigError,
      'model.vit_taps: expected 4 increasing block indices in 0..7 but got [4, 11, 17, 23]',
    );
    expect(() => modelSpecFromConfig(load('flashdepth-s', ['model.vit_num_heads=5']))).to.throw(
      ConfigError,
      'model.vit_num_heads: 5 heads do not divide the embedding width 384',
    );
    expect(() => modelSpecFromConfig(load('flashdepth-s', ['model.downsample_mamba=[0.1,0.2]']))).to.throw(
      ConfigError,
      'model.downsample_mamba: expected one pooling factor per model.mamba_in_dpt_layer entry (1) but got 2',
    );
    expect(() => modelSpecFromConfig(load('flashdepth-s', ['model.mamba_type=rnn']))).to.throw(ConfigError, 'model.mamba_type: only "add" is implemented');
    expect(() => modelSpecFromConfig(load('flashdepth-s', ['model.use_xlstm=true']))).to.throw(ConfigError, 'model.use_xlstm: the ablation temporal modules are not implemented');
    expect(() => modelSpecFromConfig(load('flashdepth', ['hybrid_configs.layers_to_skip=[2,3]']))).to.throw(ConfigError, 'only fusing path_4 is implemented');
    expect(modelSpecFromConfig(load('flashdepth-s', ['model.use_mamba=false'])).mamba).to.equal(null);
  });
});
