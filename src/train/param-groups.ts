/**
 * Which parameters train, in which group, at which learning rate (spec §5.2). The reference first freezes everything,
 * then enables one group per sub-model; a group whose lr is 0 stays frozen, the teacher is always frozen. Stage 1 and
 * stage 2 differ only in which sub-models the model has (Full adds `hybrid_fusion.*` and `teacher_model.*`).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LrConfig } from '../config.js';
import { ConfigError } from '../errors.js';
import type { FlashModule } from '../models/module.js';

export type GroupName = 'vit' | 'dpt' | 'mamba' | 'fusion';

/** One row per group: the key prefix of its parameters and the `training.lr.*` key of its learning rate. */
export const PARAM_GROUP_TABLE: ReadonlyArray<{ name: GroupName; prefix: string; lrKey: keyof LrConfig }> = [
  { name: 'vit', prefix: 'pretrained.', lrKey: 'vit' },
  { name: 'dpt', prefix: 'depth_head.', lrKey: 'dpt' },
  { name: 'mamba', prefix: 'mamba.', lrKey: 'mamba' },
  { name: 'fusion', prefix: 'hybrid_fusion.', lrKey: 'fusion' },
];

/** Always frozen (spec §5.2): the FlashDepth-L teacher of stage 2. */
export const FROZEN_PREFIXES: readonly string[] = ['teacher_model.'];

export interface TrainParam {
  /** PyTorch state-dict key. */
  key: string;
  variable: tf.Variable;
}

export interface ParamGroup {
  name: GroupName;
  /** Base learning rate (before the schedule's factor). */
  lr: number;
  params: TrainParam[];
}

export interface ParamGroups {
  /** Groups that train (non-empty, lr > 0), in table order. */
  groups: ParamGroup[];
  /** Keys that get no gradient and no optimiser state. */
  frozen: string[];
}

/** Splits a model's parameters into the reference's groups. Every parameter must belong to a group or be frozen. */
export function buildParamGroups(model: FlashModule, lr: LrConfig): ParamGroups {
  const byName = new Map<GroupName, TrainParam[]>(PARAM_GROUP_TABLE.map((g) => [g.name, []]));
  const frozen: string[] = [];
  for (const p of model.namedParameters()) {
    if (FROZEN_PREFIXES.some((f) => p.key.startsWith(f))) {
      frozen.push(p.key);
      continue;
    }
    const row = PARAM_GROUP_TABLE.find((g) => p.key.startsWith(g.prefix));
    if (!row) throw new ConfigError(`parameter ${p.key} belongs to no training group; expected a key under ${PARAM_GROUP_TABLE.map((g) => g.prefix).join(', ')}`);
    byName.get(row.name)!.push({ key: p.key, variable: p.spec.variable.read() as tf.Variable });
  }
  const groups: ParamGroup[] = [];
  for (const row of PARAM_GROUP_TABLE) {
    const params = byName.get(row.name)!;
    if (params.length === 0) continue;
    const rate = lr[row.lrKey];
    if (!(rate >= 0)) throw new ConfigError(`training.lr.${row.lrKey}: expected a learning rate ≥ 0 but received ${rate}`);
    if (rate === 0) {
      frozen.push(...params.map((p) => p.key));
      continue;
    }
    groups.push({ name: row.name, lr: rate, params });
  }
  return { groups, frozen };
}
