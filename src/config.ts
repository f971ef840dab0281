/**
 * The run configuration: typed `FlashDepthConfig`, one schema (types, defaults, allowed values), and
 * `loadConfig(dirOrFile, overrides)`: defaults, then `configs/<variant>/config.yaml`, then overrides, with unknown
 * keys and wrong types rejected by a one-line `ConfigError`.
 *
 * Key names and nesting are the reference's (Eyeline-Labs/FlashDepth `configs/*`, spec Appendix A) so its command
 * lines carry over: `eval.random_input=x.mp4`, `training.lr.vit=1e-5`, `dataset.train_datasets=[a,b]`. Keys this
 * port adds are marked "(port)" below and documented in configs/README.md.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument, stringify } from 'yaml';
import { ConfigError, describeValue } from './errors.js';

// ---------------------------------------------------------------------------------------------------------------------
// Types

export type VitSize = 'vits' | 'vitb' | 'vitl' | 'vitg';
export type DatasetResolution = 'base' | '2k';
export type MambaType = 'add' | 'modulation' | 'rnn';

export interface DatasetConfig {
  data_root: string | null;
  /** Training/validation geometry (spec §6.3). */
  resolution: DatasetResolution;
  /** Clip length T. */
  video_length: number;
  train_datasets: string[];
  val_datasets: string[];
}

/** Per-group learning rates; 0 freezes a group. */
export interface LrConfig {
  vit: number;
  fusion: number;
  dpt: number;
  /** Unused by the reference (the head belongs to the dpt group); kept for key parity. */
  head: number;
  mamba: number;
  warmup_steps: number;
}

export interface TrainingConfig {
  batch_size: number;
  workers: number;
  gradient_checkpointing: boolean;
  save_freq: number;
  val_freq: number;
  vis_freq: number;
  total_iters: number;
  gradient_accumulation: number;
  /** `l1`, `scaleshift`, or a string containing `temporal` and `k{K}`. */
  loss_type: string;
  wandb: boolean;
  wandb_name: string;
  start_with_val: boolean;
  /** (port) Base RNG seed; the reference hard-codes 42 (+ rank). */
  seed: number;
  lr: LrConfig;
}

export interface ModelConfig {
  vit_size: VitSize;
  patch_size: number;
  /** Unused by the reference (hard-coded MemEffAttention). */
  attn_class: string;
  use_mamba: boolean;
  mamba_type: MambaType;
  num_mamba_layers: number;
  downsample_mamba: number[];
  /** Unused by the reference. */
  mamba_pos_embed: string | null;
  /** DPT stages after which Mamba runs: 0 = path_4 … 3 = path_1 (spec §1.2). */
  mamba_in_dpt_layer: number[];
  mamba_d_conv: number;
  /** Not wired in the reference; Mamba2 uses d_state 256 regardless. */
  mamba_d_state: number;
  use_hydra: boolean;
  use_transformer_rnn: boolean;
  use_xlstm: boolean;
  /** (port) Student ViT width; null = the `vit_size` value. */
  vit_embed_dim: number | null;
  /** (port) Student ViT block count; null = the `vit_size` value. */
  vit_depth: number | null;
  /** (port) Student ViT heads; null = the `vit_size` value. */
  vit_num_heads: number | null;
  /** (port) Student tapped blocks (0-based); null = DA-V2's `intermediate_layer_idx[vit_size]`. */
  vit_taps: number[] | null;
  /** (port) Student DPT `out_channels`; null = the `vit_size` value. */
  dpt_out_channels: number[] | null;
}

export interface HybridConfig {
  use_hybrid: boolean;
  teacher_model_path: string | null;
  /** Teacher input height when the frame is taller (spec §2.6). */
  teacher_resolution: number;
  /** Path indices not fused (0 = path_4); the reference fuses only path_4. */
  layers_to_skip: number[];
  num_blocks: number;
  mlp_expand: number;
  num_heads: number;
  /** (port) Teacher ViT width; null = ViT-L's 1024. */
  teacher_vit_embed_dim: number | null;
  /** (port) Teacher ViT block count; null = 24. */
  teacher_vit_depth: number | null;
  /** (port) Teacher ViT heads; null = 16. */
  teacher_vit_num_heads: number | null;
  /** (port) Teacher tapped blocks; null = [4, 11, 17, 23]. */
  teacher_vit_taps: number[] | null;
  /** (port) Teacher DPT `out_channels`; null = [256, 512, 1024, 1024]. */
  teacher_dpt_out_channels: number[] | null;
}

export interface EvalConfig {
  compile: boolean;
  /** Unused by the reference. */
  metrics: boolean;
  save_grid: boolean;
  /** Output folder under `config_dir`. */
  outfolder: string;
  test_datasets: string[];
  test_dataset_resolution: DatasetResolution;
  /** An .mp4 file or a folder of them, for in-the-wild inference. */
  random_input: string | null;
  out_video: boolean;
  out_mp4: boolean;
  save_res: number;
  save_depth_npy: boolean;
  save_vis_map: boolean;
  dummy_timing: boolean;
  /** Unused by the reference. */
  large_dir: string | null;
  /** (fork) Stream source URL (rtsp://…, http://…) for streaming inference. */
  url: string | null;
  /** (fork) Frames discarded when a stream opens. */
  stream_warmup_frames: number;
}

export interface FlashDepthConfig {
  /** The folder of the loaded config file; checkpoints and outputs live there. */
  config_dir: string | null;
  inference: boolean;
  /** A checkpoint to load: pretrained init for a fresh training run, the forced checkpoint for inference. */
  load: string | null;
  dataset: DatasetConfig;
  training: TrainingConfig;
  model: ModelConfig;
  hybrid_configs: HybridConfig;
  eval: EvalConfig;
}

// ---------------------------------------------------------------------------------------------------------------------
// Schema: one entry per key, mirroring the interfaces (the compiler checks that they match)

type FieldKind = 'string' | 'number' | 'integer' | 'boolean' | 'string[]' | 'number[]' | 'integer[]';

class Field<T> {
  constructor(
    readonly kind: FieldKind,
    readonly defaultValue: T,
    readonly nullable: boolean,
    readonly choices: readonly string[] | null,
  ) {}

  /** What a value must be, for error messages. */
  describe(): string {
    const base = this.choices
      ? `one of ${this.choices.map((c) => JSON.stringify(c)).join(', ')}`
      : {
          string: 'a string',
          number: 'a number',
          integer: 'an integer',
          boolean: 'true or false',
          'string[]': 'a list of strings, e.g. [a,b]',
          'number[]': 'a list of numbers, e.g. [0.1]',
          'integer[]': 'a list of integers, e.g. [1,2]',
        }[this.kind];
    return this.nullable ? `${base} or null` : base;
  }
}

type Leaf = string | number | boolean | null | string[] | number[];
type Schema<T> = { readonly [K in keyof T]-?: T[K] extends Leaf ? Field<T[K]> : Schema<T[K]> };

const str = (d: string): Field<string> => new Field('string', d, false, null);
const strOrNull = (): Field<string | null> => new Field('string', null, true, null);
const num = (d: number): Field<number> => new Field('number', d, false, null);
const int = (d: number): Field<number> => new Field('integer', d, false, null);
const intOrNull = (): Field<number | null> => new Field('integer', null, true, null);
const bool = (d: boolean): Field<boolean> => new Field('boolean', d, false, null);
const strList = (d: string[]): Field<string[]> => new Field('string[]', d, false, null);
const numList = (d: number[]): Field<number[]> => new Field('number[]', d, false, null);
const intList = (d: number[]): Field<number[]> => new Field('integer[]', d, false, null);
const intListOrNull = (): Field<number[] | null> => new Field('integer[]', null, true, null);
const oneOf = <T extends string>(d: T, choices: readonly T[]): Field<T> => new Field('string', d, false, choices);

const RESOLUTIONS = ['base', '2k'] as const;

/** Defaults are FlashDepth-L's reference values (the upstream `FlashDepth` constructor's defaults). */
const SCHEMA: Schema<FlashDepthConfig> = {
  config_dir: strOrNull(),
  inference: bool(false),
  load: strOrNull(),
  dataset: {
    data_root: strOrNull(),
    resolution: oneOf('base', RESOLUTIONS),
    video_length: int(5),
    train_datasets: strList(['mvs-synth', 'dynamicreplica', 'tartanair', 'pointodyssey', 'spring']),
    val_datasets: strList(['sintel', 'waymo']),
  },
  training: {
    batch_size: int(4),
    workers: int(10),
    gradient_checkpointing: bool(true),
    save_freq: int(1000),
    val_freq: int(1000),
    vis_freq: int(1000),
    total_iters: int(60001),
    gradient_accumulation: int(1),
    loss_type: str('l1'),
    wandb: bool(false),
    wandb_name: str('experiment'),
    start_with_val: bool(false),
    seed: int(42),
    lr: { vit: num(5e-6), fusion: num(1e-4), dpt: num(5e-5), head: num(5e-5), mamba: num(1e-4), warmup_steps: int(1000) },
  },
  model: {
    vit_size: oneOf<VitSize>('vitl', ['vits', 'vitb', 'vitl', 'vitg']),
    patch_size: int(14),
    attn_class: str('MemEffAttention'),
    use_mamba: bool(true),
    mamba_type: oneOf<MambaType>('add', ['add', 'modulation', 'rnn']),
    num_mamba_layers: int(4),
    downsample_mamba: numList([0.1]),
    mamba_pos_embed: strOrNull(),
    mamba_in_dpt_layer: intList([3]),
    mamba_d_conv: int(4),
    mamba_d_state: int(256),
    use_hydra: bool(false),
    use_transformer_rnn: bool(false),
    use_xlstm: bool(false),
    vit_embed_dim: intOrNull(),
    vit_depth: intOrNull(),
    vit_num_heads: intOrNull(),
    vit_taps: intListOrNull(),
    dpt_out_channels: intListOrNull(),
  },
  hybrid_configs: {
    use_hybrid: bool(false),
    teacher_model_path: strOrNull(),
    teacher_resolution: int(490),
    layers_to_skip: intList([1, 2, 3]),
    num_blocks: int(4),
    mlp_expand: int(2),
    num_heads: int(2),
    teacher_vit_embed_dim: intOrNull(),
    teacher_vit_depth: intOrNull(),
    teacher_vit_num_heads: intOrNull(),
    teacher_vit_taps: intListOrNull(),
    teacher_dpt_out_channels: intListOrNull(),
  },
  eval: {
    compile: bool(true),
    metrics: bool(false),
    save_grid: bool(false),
    outfolder: str('test'),
    test_datasets: strList(['unreal4k', 'sintel', 'eth3d', 'waymo', 'urbansyn']),
    test_dataset_resolution: oneOf('base', RESOLUTIONS),
    random_input: strOrNull(),
    out_video: bool(true),
    out_mp4: bool(true),
    save_res: int(518),
    save_depth_npy: bool(true),
    save_vis_map: bool(false),
    dummy_timing: bool(false),
    large_dir: strOrNull(),
    url: strOrNull(),
    stream_warmup_frames: int(5),
  },
};

/** A section of the schema: its keys map to fields or nested sections. */
type SchemaNode = Field<unknown> | { readonly [key: string]: SchemaNode };
/** A section of a config being built. */
type ConfigNode = { [key: string]: unknown };

const ROOT = SCHEMA as unknown as { readonly [key: string]: SchemaNode };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function cloneValue<T>(v: T): T {
  return (Array.isArray(v) ? [...v] : v) as T;
}

function defaultsOf(node: { readonly [key: string]: SchemaNode }): ConfigNode {
  const out: ConfigNode = {};
  for (const [k, v] of Object.entries(node)) out[k] = v instanceof Field ? cloneValue(v.defaultValue) : defaultsOf(v);
  return out;
}

/** A fresh config holding the defaults (FlashDepth-L's reference values). */
export function defaultConfig(): FlashDepthConfig {
  return defaultsOf(ROOT) as unknown as FlashDepthConfig;
}

/** Every leaf key as a dotted path, in schema order (e.g. `training.lr.vit`). */
export function configKeys(): string[] {
  const out: string[] = [];
  const walk = (node: { readonly [key: string]: SchemaNode }, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      if (v instanceof Field) out.push(prefix + k);
      else walk(v, `${prefix}${k}.`);
    }
  };
  walk(ROOT, '');
  return out;
}

// ---------------------------------------------------------------------------------------------------------------------
// Validation

/** Where a value came from, for error messages: a file, or one override. */
type Source = { kind: 'file'; file: string } | { kind: 'override'; text: string };

function where(source: Source, path: string): string {
  return source.kind === 'file' ? `${source.file}: ${path}` : `override '${source.text}': ${path}`;
}

function sectionLabel(path: string): string {
  return path === '' ? 'at the top level' : `under ${path}`;
}

function unknownKeyError(source: Source, sectionPath: string, key: string, section: { readonly [key: string]: SchemaNode }): ConfigError {
  const full = sectionPath === '' ? key : `${sectionPath}.${key}`;
  return new ConfigError(
    `${where(source, full)}: unknown config key; valid keys ${sectionLabel(sectionPath)}: ${Object.keys(section).join(', ')}`,
  );
}

function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

/**
 * Checks one value against its field. `fromText` marks a command-line override, whose raw text is accepted for
 * string fields even when it reads as a number or boolean (`training.wandb_name=2024`).
 */
function checkValue(field: Field<unknown>, value: unknown, source: Source, path: string, rawText: string | null): unknown {
  const fail = (): ConfigError => new ConfigError(`${where(source, path)}: expected ${field.describe()} but got ${describeValue(value)}`);
  if (value === null || value === undefined) {
    if (field.nullable) return null;
    throw fail();
  }
  switch (field.kind) {
    case 'string': {
      const s = typeof value === 'string' ? value : rawText !== null && typeof value !== 'object' ? rawText : null;
      if (s === null) throw fail();
      if (field.choices && !field.choices.includes(s)) throw fail();
      return s;
    }
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw fail();
      return value;
    case 'integer':
      if (!isInteger(value)) throw fail();
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw fail();
      return value;
    case 'string[]':
      if (!Array.isArray(value)) throw fail();
      // Flow lists from the command line read `[1,b]` as [1, 'b']; dataset names are strings.
      return value.map((item) => {
        if (typeof item === 'string') return item;
        if (rawText !== null && (typeof item === 'number' || typeof item === 'boolean')) return String(item);
        throw fail();
      });
    case 'number[]':
      if (!Array.isArray(value) || !value.every((n) => typeof n === 'number' && Number.isFinite(n))) throw fail();
      return [...value];
    case 'integer[]':
      if (!Array.isArray(value) || !value.every(isInteger)) throw fail();
      return [...value];
  }
}

/** Merges `raw` (a parsed YAML mapping or override object) into `target`, checking every key and value. */
function mergeSection(
  target: ConfigNode,
  section: { readonly [key: string]: SchemaNode },
  raw: Record<string, unknown>,
  source: Source,
  sectionPath: string,
): void {
  for (const [key, value] of Object.entries(raw)) {
    const node = Object.hasOwn(section, key) ? section[key] : undefined;
    if (node === undefined) throw unknownKeyError(source, sectionPath, key, section);
    const path = sectionPath === '' ? key : `${sectionPath}.${key}`;
    if (node instanceof Field) {
      target[key] = checkValue(node, value, source, path, null);
    } else if (isPlainObject(value)) {
      mergeSection(target[key] as ConfigNode, node, value, source, path);
    } else if (value !== null) {
      // `training:` with nothing under it parses as null and changes nothing; anything else is a mistake.
      throw new ConfigError(`${where(source, path)}: expected a section with keys ${Object.keys(node).join(', ')} but got ${describeValue(value)}`);
    }
  }
}

/**
 * Checks a whole config object (e.g. one stored in a checkpoint) and fills missing keys with defaults.
 * `origin` names where it came from in error messages.
 */
export function validateConfig(raw: unknown, origin: string): FlashDepthConfig {
  const source: Source = { kind: 'file', file: origin };
  if (!isPlainObject(raw)) throw new ConfigError(`${origin}: expected a mapping of config keys but got ${describeValue(raw)}`);
  const config = defaultsOf(ROOT);
  mergeSection(config, ROOT, raw, source, '');
  return config as unknown as FlashDepthConfig;
}

// ---------------------------------------------------------------------------------------------------------------------
// Overrides

/** An override object, as yargs gives flags: nested (`{training: {lr: {vit: 1e-5}}}`) or dotted keys. */
export interface ConfigOverrideObject {
  [key: string]: unknown;
}

/** Dotted `key.sub=value` strings (reference CLI style), objects of flags, or a mix. */
export type ConfigOverrides = ReadonlyArray<string | ConfigOverrideObject> | ConfigOverrideObject;

/** `randomInput` / `random-input` → `random_input`. */
function toSnakeCase(key: string): string {
  return key.replace(/-/g, '_').replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Resolves a dotted key to the full path of a leaf. Exact paths win; otherwise (object overrides only) a unique
 * suffix is accepted, so the flag `--lr.mamba` means `training.lr.mamba` and `--randomInput` means
 * `eval.random_input`.
 */
function resolveKey(dotted: string, source: Source, allowSuffix: boolean): string {
  const parts = dotted.split('.').map(toSnakeCase);
  const path = parts.join('.');
  const keys = configKeys();
  if (keys.includes(path)) return path;
  if (allowSuffix) {
    const matches = keys.filter((k) => k.endsWith(`.${path}`));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new ConfigError(`${where(source, dotted)}: ambiguous config key; it could be ${matches.join(', ')} (write the full key)`);
    }
  }
  // Walk as far as the path exists to name the level where it went wrong.
  let section: { readonly [key: string]: SchemaNode } = ROOT;
  let walked = '';
  for (const part of parts) {
    const node: SchemaNode | undefined = Object.hasOwn(section, part) ? section[part] : undefined;
    if (node === undefined) throw unknownKeyError(source, walked, part, section);
    walked = walked === '' ? part : `${walked}.${part}`;
    if (node instanceof Field) break;
    section = node;
  }
  throw new ConfigError(
    `${where(source, walked)}: a section, not a value; set one of its keys: ${Object.keys(section).map((k) => `${walked}.${k}`).join(', ')}`,
  );
}

function fieldAt(path: string): Field<unknown> {
  let node: SchemaNode = ROOT;
  for (const part of path.split('.')) node = (node as { readonly [key: string]: SchemaNode })[part]!;
  return node as Field<unknown>;
}

function setAt(config: ConfigNode, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = config;
  for (const part of parts.slice(0, -1)) node = node[part] as ConfigNode;
  node[parts[parts.length - 1]!] = value;
}

/** Parses an override's value as a YAML scalar or flow list: `1e-5`, `true`, `null`, `[a,b]`, `x.mp4`. */
function parseOverrideValue(text: string, source: Source): unknown {
  const doc = parseDocument(text, { version: '1.2' });
  if (doc.errors.length > 0) {
    throw new ConfigError(`override '${source.kind === 'override' ? source.text : text}': value is not valid YAML: ${firstLine(doc.errors[0]!.message)}`);
  }
  const value: unknown = doc.toJS();
  return value === undefined ? null : value;
}

/** Flattens a nested override object to dotted keys (`{training: {lr: {vit: 1}}}` → `training.lr.vit`). */
function flattenOverrideObject(obj: ConfigOverrideObject, prefix = ''): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (isPlainObject(v)) out.push(...flattenOverrideObject(v, key));
    else if (v !== undefined) out.push([key, v]);
  }
  return out;
}

/** Applies overrides to a config, returning a new config (the input is not changed). */
export function applyOverrides(config: FlashDepthConfig, overrides: ConfigOverrides): FlashDepthConfig {
  const out = structuredClone(config) as unknown as ConfigNode;
  const list: ReadonlyArray<string | ConfigOverrideObject> = Array.isArray(overrides)
    ? (overrides as ReadonlyArray<string | ConfigOverrideObject>)
    : [overrides as ConfigOverrideObject];
  for (const item of list) {
    if (typeof item === 'string') {
      const source: Source = { kind: 'override', text: item };
      const eq = item.indexOf('=');
      if (eq <= 0) throw new ConfigError(`override '${item}': expected key=value, e.g. eval.random_input=video.mp4`);
      const key = item.slice(0, eq).trim();
      const text = item.slice(eq + 1).trim();
      const path = resolveKey(key, source, false);
      setAt(out, path, checkValue(fieldAt(path), parseOverrideValue(text, source), source, path, text));
    } else {
      // Flags may arrive twice (yargs keeps `random-input` and `randomInput`); they must agree.
      const seen = new Map<string, unknown>();
      for (const [key, value] of flattenOverrideObject(item)) {
        const source: Source = { kind: 'override', text: `${key}=${describeValue(value)}` };
        const path = resolveKey(key, source, true);
        const rawText = typeof value === 'string' ? value : null;
        const parsed = typeof value === 'string' && fieldAt(path).kind !== 'string' ? parseOverrideValue(value, source) : value;
        const checked = checkValue(fieldAt(path), parsed, source, path, rawText);
        if (seen.has(path) && JSON.stringify(seen.get(path)) !== JSON.stringify(checked)) {
          throw new ConfigError(`${where(source, path)}: set twice with different values (${describeValue(seen.get(path))} and ${describeValue(checked)})`);
        }
        seen.set(path, checked);
        setAt(out, path, checked);
      }
    }
  }
  return out as unknown as FlashDepthConfig;
}

// ---------------------------------------------------------------------------------------------------------------------
// Loading

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

/** The config file for a folder (`<dir>/config.yaml`) or the file itself. */
export function resolveConfigFile(configDirOrFile: string): string {
  if (!existsSync(configDirOrFile)) {
    throw new ConfigError(`config not found: ${configDirOrFile} (expected a folder with config.yaml, or a .yaml file)`);
  }
  if (statSync(configDirOrFile).isDirectory()) {
    const file = join(configDirOrFile, 'config.yaml');
    if (!existsSync(file)) throw new ConfigError(`config not found: ${file} (the folder ${configDirOrFile} has no config.yaml)`);
    return file;
  }
  return configDirOrFile;
}

/** Reads and checks one YAML config file (no overrides, `config_dir` as written in the file). */
export function readConfigFile(file: string): FlashDepthConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read config file (${(e as Error).message})`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { version: '1.2', uniqueKeys: true, prettyErrors: false, lineCounter: lines });
  if (doc.errors.length > 0) {
    const err = doc.errors[0]!;
    const pos = lines.linePos(err.pos[0]);
    const at = ` at line ${pos.line}, column ${pos.col}`;
    throw new ConfigError(`${file}: invalid YAML${at}: ${firstLine(err.message)}`);
  }
  const raw: unknown = doc.toJS();
  if (raw === null || raw === undefined) return validateConfig({}, file);
  if (!isPlainObject(raw)) throw new ConfigError(`${file}: expected a mapping of config keys at the top level but got ${describeValue(raw)}`);
  return validateConfig(raw, file);
}

/**
 * Loads `configs/<variant>/` (or a .yaml file): defaults, then the file, then `config_dir` = the file's folder
 * (absolute), then `overrides` in order. Throws `ConfigError` naming the key and the file or override at fault.
 */
export function loadConfig(configDirOrFile: string, overrides: ConfigOverrides = []): FlashDepthConfig {
  const file = resolveConfigFile(configDirOrFile);
  const config = readConfigFile(file);
  config.config_dir = resolve(dirname(file));
  return applyOverrides(config, overrides);
}

// ---------------------------------------------------------------------------------------------------------------------
// Reporting

/** Values that differ from `base` (default: the built-in defaults), as dotted `key=value` lines. */
export function describeConfig(config: FlashDepthConfig, base: FlashDepthConfig = defaultConfig()): string[] {
  const get = (c: FlashDepthConfig, path: string): unknown =>
    path.split('.').reduce<unknown>((node, part) => (node as ConfigNode)[part], c);
  return configKeys()
    .filter((k) => JSON.stringify(get(config, k)) !== JSON.stringify(get(base, k)))
    .map((k) => `${k}=${JSON.stringify(get(config, k))}`);
}

/** The config as YAML (keys in schema order), for run folders and logs. */
export function configToYaml(config: FlashDepthConfig): string {
  return stringify(config, { lineWidth: 0 });
}

/**
 * A short stable hash of the settings (12 hex digits), for reports next to measured numbers. `config_dir` is left
 * out: it says where a run lives, not how it runs, and differs between machines.
 */
export function configHash(config: FlashDepthConfig): string {
  const canonical = configKeys()
    .filter((k) => k !== 'config_dir')
    .map((k) => `${k}=${JSON.stringify(k.split('.').reduce<unknown>((node, part) => (node as ConfigNode)[part], config))}`)
    .join('\n');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 12);
}

/** The variant folder name of a config (`flashdepth-s`), or the file name when it is not in a folder of its own. */
export function configName(config: FlashDepthConfig): string {
  return config.config_dir ? basename(config.config_dir) : 'defaults';
}
