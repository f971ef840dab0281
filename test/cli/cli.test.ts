import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { expect } from 'chai';
import { LATER_COMMANDS } from '../../src/cli/later.js';
import { fixture, REPO_ROOT } from '../helpers/fixtures.js';
import { CLI, runCliProcess } from './spawn-cli.js';

/** Files reachable from `file` through static `import … from '…'` (not `import()`), relative ones followed. */
function staticImportGraph(file: string, seen = new Map<string, string[]>()): Map<string, string[]> {
  if (seen.has(file)) return seen;
  const specifiers = [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  const bare = [...readFileSync(file, 'utf8').matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
  const all = [...specifiers, ...bare];
  seen.set(file, all);
  for (const s of all) if (s.startsWith('.')) staticImportGraph(resolve(dirname(file), s), seen);
  return seen;
}

describe('cli', function () {
  it('--help lists every command and states option types and defaults', async function () {
    const { code, stdout } = await runCliProcess(['--help']);
    expect(code).to.equal(0);
    for (const name of ['backend', 'convert', 'bench', 'data', ...LATER_COMMANDS.map((c) => c.name)]) {
      expect(stdout, name).to.match(new RegExp(`^  flashdepth ${name}\\b`, 'm'));
    }
    expect(stdout).to.include('--verbose').and.include('[boolean] [default: false]');
  });

  it('backend --help shows the backend choices with type and default', async function () {
    const { code, stdout } = await runCliProcess(['backend', '--help']);
    expect(code).to.equal(0);
    expect(stdout).to.include('[string] [choices: "auto", "tensorflow", "webgpu", "wasm", "cpu"] [default: "auto"]');
  });

  it('every npm script that calls the CLI names a command it has', async function () {
    const scripts = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    const { stdout } = await runCliProcess(['--help']);
    const known = new Set([...stdout.matchAll(/^  flashdepth ([a-z]+)/gm)].map((m) => m[1]!));
    const viaCli = Object.entries(scripts).filter(([, cmd]) => cmd.startsWith('node dist/src/cli/main.js '));
    expect(viaCli.map(([name]) => name).sort()).to.deep.equal(['backend', 'bench', 'convert', 'data', 'distill', 'eval', 'infer', 'train', 'weights']);
    for (const [name, cmd] of viaCli) expect(known.has(cmd.split(' ')[2]!), `${name}: ${cmd}`).to.equal(true);
  });

  it('--help loads no tfjs: the CLI entry statically imports nothing from @tensorflow or webgpu', function () {
    const graph = staticImportGraph(CLI);
    expect([...graph.keys()].map((f) => f.slice(REPO_ROOT.length + 1)).sort()).to.deep.equal([
      'dist/src/cli/app.js',
      'dist/src/cli/later.js',
      'dist/src/cli/main.js',
      'dist/src/errors.js',
      'dist/src/log.js',
    ]);
    const external = [...graph.values()].flat().filter((s) => !s.startsWith('.'));
    expect(external.sort()).to.deep.equal(['yargs', 'yargs/helpers']);
  });

  for (const later of LATER_COMMANDS) {
    it(`${later.name} says it is not implemented yet and exits 64`, async function () {
      const { code, stdout, stderr } = await runCliProcess([later.name, '--some-flag', 'x']);
      expect(code).to.equal(64);
      expect(stdout).to.equal('');
      expect(stderr).to.equal(`error: ${later.name}: not implemented yet (issue ${later.issue})\n`);
    });
  }

  it('a usage error is one line with exit code 2', async function () {
    const { code, stderr } = await runCliProcess(['backend', '--backend', 'gpu']);
    expect(code).to.equal(2);
    expect(stderr).to.equal('error: Invalid values: Argument: backend, Given: "gpu", Choices: "auto", "tensorflow", "webgpu", "wasm", "cpu"\n');
  });

  it('no command is a usage error', async function () {
    const { code, stderr } = await runCliProcess([]);
    expect(code).to.equal(2);
    expect(stderr).to.equal('error: Name a command (see --help)\n');
  });

  describe('convert', function () {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'flashdepth-cli-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('a missing input file is one error line naming it, exit 3 (CheckpointError)', async function () {
      const missing = join(dir, 'no-such.pth');
      const { code, stdout, stderr } = await runCliProcess(['convert', missing, join(dir, 'out.safetensors')]);
      expect(code).to.equal(3);
      expect(stdout).to.equal('');
      expect(stderr.split('\n')).to.have.length(2); // one line + the final newline
      expect(stderr).to.match(new RegExp(`^error: ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
      expect(stderr).not.to.include('    at ');
    });

    it('--list with --verbose on a missing file adds the stack', async function () {
      const { code, stderr } = await runCliProcess(['convert', '--list', '--verbose', join(dir, 'none.pth')]);
      expect(code).to.equal(3);
      expect(stderr).to.match(/^error: .*none\.pth: /);
      expect(stderr).to.include('debug: CheckpointError: ');
    });

    it('without an output file it is a usage error', async function () {
      const { code, stderr } = await runCliProcess(['convert', 'in.pth']);
      expect(code).to.equal(2);
      expect(stderr).to.equal('error: convert: name the safetensors file to write after in.pth\n');
    });

    it('converts a .pth and lists the same tensors from both files', async function () {
      const pth = fixture(this, 'full_extra_model.pth');
      const out = join(dir, 'full_extra.safetensors');
      const converted = await runCliProcess(['convert', pth, out]);
      expect(converted.code, converted.stderr).to.equal(0);
      expect(converted.stderr).to.match(/^wrote .*full_extra\.safetensors: \d+ tensors, [\d.]+ MiB of tensor data\n$/);
      const [fromPth, fromSafetensors] = await Promise.all([runCliProcess(['convert', '--list', pth]), runCliProcess(['convert', '--list', out])]);
      expect(fromPth.code).to.equal(0);
      expect(fromPth.stdout.split('\n')[0]).to.equal('hybrid_fusion.blocks.0.0.norm1.weight\tfloat16\t[64]');
      expect(fromSafetensors.stdout).to.equal(fromPth.stdout);
    });
  });
});
