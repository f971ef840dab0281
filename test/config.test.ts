import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import {
  applyOverrides,
  configHash,
  configKeys,
  configToYaml,
  defaultConfig,
  describeConfig,
  loadConfig,
  validateConfig,
} from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { REPO_ROOT } from './helpers/fixtures.js';

const configs = (name: string): string => join(REPO_ROOT, 'configs', name);

function tmpYaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, text);
  return file;
}

describe('config', () => {
  describe('the three reference configs (spec Appendix A)', () => {
    it('flashdepth-s: vits, Mamba after refinenet3, base resolution, five training sets', () => {
      const c = loadConfig(configs('flashdepth-s'));
      expect(c.model.vit_size).to.equal('vits');
      expect(c.model.mamba_in_dpt_layer).to.deep.equal([1]);
      expect(c.dataset.resolution).to.equal('base');
      expect(c.eval.test_dataset_resolution).to.equal('base');
      expect(c.dataset.train_datasets).to.deep.equal(['mvs-synth', 'dynamicreplica', 'tartanair', 'pointodyssey', 'spring']);
      expect(c.hybrid_configs.use_hybrid).to.equal(false);
      expect(c.config_dir).to.equal(resolve(configs('flashdepth-s')));
    });

    it('flashdepth-l: vitl, Mamba after refinenet1; lr groups and training values', () => {
      const c = loadConfig(configs('flashdepth-l'));
      expect(c.model.vit_size).to.equal('vitl');
      expect(c.model.mamba_in_dpt_layer).to.deep.equal([3]);
      expect(c.training.lr).to.deep.equal({ vit: 5e-6, fusion: 1e-4, dpt: 5e-5, head: 5e-5, mamba: 1e-4, warmup_steps: 1000 });
      expect(c.training.total_iters).to.equal(60001);
      expect(c.training.batch_size).to.equal(4);
      expect(c.model.downsample_mamba).to.deep.equal([0.1]);
      expect(c.dataset.val_datasets).to.deep.equal(['sintel', 'waymo']);
      expect(c.eval.test_datasets).to.deep.equal(['unreal4k', 'sintel', 'eth3d', 'waymo', 'urbansyn']);
    });

    it('flashdepth (Full): hybrid on, 2k, mvs-synth + spring, teacher at 490, 4 fusion blocks', () => {
      const c = loadConfig(join(configs('flashdepth'), 'config.yaml'));
      expect(c.hybrid_configs).to.include({ use_hybrid: true, teacher_resolution: 490, num_blocks: 4, mlp_expand: 2, num_heads: 2 });
      expect(c.hybrid_configs.layers_to_skip).to.deep.equal([1, 2, 3]);
      expect(c.dataset.resolution).to.equal('2k');
      expect(c.eval.test_dataset_resolution).to.equal('2k');
      expect(c.dataset.train_datasets).to.deep.equal(['mvs-synth', 'spring']);
      expect(c.model.vit_size).to.equal('vits');
      expect(c.eval.compile).to.equal(true);
      expect(c.load).to.equal(null);
    });

    it('each file sets every reference key; only the port additions fall back to defaults', () => {
      const PORT_KEYS = [
        'training.seed', 'model.vit_embed_dim', 'model.vit_depth', 'model.vit_num_heads', 'model.vit_taps',
        'model.dpt_out_channels', 'hybrid_configs.teacher_vit_embed_dim', 'hybrid_configs.teacher_vit_depth',
        'hybrid_configs.teacher_vit_num_heads', 'hybrid_configs.teacher_vit_taps', 'hybrid_configs.teacher_dpt_out_channels',
        'eval.url', 'eval.stream_warmup_frames',
      ];
      const referenceKeys = configKeys().filter((k) => !PORT_KEYS.includes(k));
      expect(referenceKeys).to.have.length(61);
      for (const name of ['flashdepth', 'flashdepth-l', 'flashdepth-s']) {
        const leaves: string[] = [];
        const walk = (node: unknown, prefix: string): void => {
          for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
            if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v, `${prefix}${k}.`);
            else leaves.push(prefix + k);
          }
        };
        walk(parse(readFileSync(join(configs(name), 'config.yaml'), 'utf8')), '');
        expect(leaves, name).to.deep.equal(referenceKeys);
      }
      // L's file equals the defaults (which are L's reference values) apart from config_dir.
      expect(describeConfig(loadConfig(configs('flashdepth-l')))).to.deep.equal([`config_dir=${JSON.stringify(resolve(configs('flashdepth-l')))}`]);
    });

    it('round-trips through YAML', () => {
      const c = loadConfig(configs('flashdepth'), ['training.lr.vit=0']);
      const again = loadConfig(tmpYaml(configToYaml(c)));
      expect({ ...again, config_dir: null }).to.deep.equal({ ...c, config_dir: null });
      expect(configHash(again)).to.equal(configHash(c));
    });
  });

  describe('overrides', () => {
    it('dotted key=value strings, values parsed as YAML scalars and flow lists', () => {
      const c = loadConfig(configs('flashdepth-s'), [
        'eval.random_input=x.mp4',
        'training.lr.vit=1e-5',
        'dataset.train_datasets=[a,b]',
        'model.mamba_in_dpt_layer=[2]',
        'inference=true',
        'load=null',
        'training.wandb_name=2024',
      ]);
      expect(c.eval.random_input).to.equal('x.mp4');
      expect(c.training.lr.vit).to.equal(1e-5);
      expect(c.dataset.train_datasets).to.deep.equal(['a', 'b']);
      expect(c.model.mamba_in_dpt_layer).to.deep.equal([2]);
      expect(c.inference).to.equal(true);
      expect(c.load).to.equal(null);
      expect(c.training.wandb_name).to.equal('2024');
    });

    it('objects from yargs: nested or dotted, camelCase or kebab-case, unique suffixes', () => {
      const c = applyOverrides(defaultConfig(), {
        eval: { randomInput: 'clip.mp4', 'random-input': 'clip.mp4' },
        'training.lr': { mamba: 2e-4 },
        'lr.dpt': '1e-6',
        totalIters: 5,
        trainDatasets: ['spring'],
      });
      expect(c.eval.random_input).to.equal('clip.mp4');
      expect(c.training.lr.mamba).to.equal(2e-4);
      expect(c.training.lr.dpt).to.equal(1e-6);
      expect(c.training.total_iters).to.equal(5);
      expect(c.dataset.train_datasets).to.deep.equal(['spring']);
    });

    it('later overrides win and the input config is not changed', () => {
      const base = defaultConfig();
      const c = applyOverrides(base, ['training.batch_size=2', { batchSize: 3 }]);
      expect(c.training.batch_size).to.equal(3);
      expect(base.training.batch_size).to.equal(4);
    });

    it('configHash is stable, short, and changes with a setting but not with config_dir', () => {
      const a = loadConfig(configs('flashdepth-s'));
      const b = applyOverrides(a, ['config_dir=/elsewhere']);
      expect(configHash(a)).to.match(/^[0-9a-f]{12}$/);
      expect(configHash(b)).to.equal(configHash(a));
      expect(configHash(applyOverrides(a, ['training.lr.vit=0']))).to.not.equal(configHash(a));
    });
  });

  describe('errors', () => {
    it('unknown key in a file names the file, the key and the valid keys at that level', () => {
      const file = tmpYaml('training:\n  lr:\n    vitt: 1.0e-5\n');
      expect(() => loadConfig(file)).to.throw(
        ConfigError,
        `${file}: training.lr.vitt: unknown config key; valid keys under training.lr: vit, fusion, dpt, head, mamba, warmup_steps`,
      );
    });

    it('unknown top-level key and unknown override key', () => {
      const file = tmpYaml('inferense: true\n');
      expect(() => loadConfig(file)).to.throw(
        ConfigError,
        `${file}: inferense: unknown config key; valid keys at the top level: config_dir, inference, load, dataset, training, model, hybrid_configs, eval`,
      );
      expect(() => loadConfig(configs('flashdepth-s'), ['eval.randm_input=x.mp4'])).to.throw(
        ConfigError,
        "override 'eval.randm_input=x.mp4': eval.randm_input: unknown config key; valid keys under eval: compile, metrics,",
      );
    });

    it('wrong types name the key, the expectation and the value', () => {
      expect(() => loadConfig(configs('flashdepth-s'), ['training.batch_size=four'])).to.throw(
        ConfigError,
        `override 'training.batch_size=four': training.batch_size: expected an integer but got "four"`,
      );
      expect(() => loadConfig(configs('flashdepth-s'), ['training.batch_size=2.5'])).to.throw(ConfigError, 'expected an integer but got 2.5 (number)');
      expect(() => loadConfig(configs('flashdepth-s'), ['model.vit_size=vitx'])).to.throw(
        ConfigError,
        `model.vit_size: expected one of "vits", "vitb", "vitl", "vitg" but got "vitx"`,
      );
      expect(() => loadConfig(configs('flashdepth-s'), ['model.downsample_mamba=0.1'])).to.throw(
        ConfigError,
        'model.downsample_mamba: expected a list of numbers, e.g. [0.1] but got 0.1 (number)',
      );
      const file = tmpYaml('eval:\n  compile: "yes"\n');
      expect(() => loadConfig(file)).to.throw(ConfigError, `${file}: eval.compile: expected true or false but got "yes"`);
      expect(() => loadConfig(tmpYaml('model: 3\n'))).to.throw(ConfigError, 'model: expected a section with keys vit_size, patch_size,');
    });

    it('setting a section, a malformed override, and an ambiguous flag', () => {
      expect(() => applyOverrides(defaultConfig(), ['training.lr=1'])).to.throw(
        ConfigError,
        "override 'training.lr=1': training.lr: a section, not a value; set one of its keys: training.lr.vit, training.lr.fusion,",
      );
      expect(() => applyOverrides(defaultConfig(), ['training.lr.vit'])).to.throw(ConfigError, "override 'training.lr.vit': expected key=value");
      expect(applyOverrides(defaultConfig(), { resolution: '2k' }).dataset.resolution).to.equal('2k');
      expect(() => applyOverrides(defaultConfig(), { lr: { vitt: 1 } })).to.throw(
        ConfigError,
        "override 'lr.vitt=1 (number)': lr: unknown config key; valid keys at the top level: config_dir, inference,",
      );
    });

    it('bad YAML names the file and the line', () => {
      const file = tmpYaml('training:\n  lr: [1, 2\nmodel: {\n');
      expect(() => loadConfig(file)).to.throw(ConfigError, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid YAML at line \\d+, column \\d+: `));
      const dup = tmpYaml('inference: true\ninference: false\n');
      expect(() => loadConfig(dup)).to.throw(ConfigError, `${dup}: invalid YAML at line 2`);
    });

    it('a missing config folder or file', () => {
      expect(() => loadConfig('/nonexistent/flashdepth-x')).to.throw(ConfigError, 'config not found: /nonexistent/flashdepth-x');
      const dir = mkdtempSync(join(tmpdir(), 'cfg-empty-'));
      expect(() => loadConfig(dir)).to.throw(ConfigError, `config not found: ${join(dir, 'config.yaml')}`);
    });

    it('validateConfig checks configs stored elsewhere (checkpoints)', () => {
      expect(() => validateConfig({ model: { vit_size: 3 } }, 'ckpt.pth[config]')).to.throw(
        ConfigError,
        'ckpt.pth[config]: model.vit_size: expected one of',
      );
      expect(validateConfig({}, 'x').model.vit_size).to.equal('vitl');
    });
  });
});
