/** `npm run convert -- in.pth out.safetensors` and `npm run convert -- --list in.pth`. */
import { ConfigError } from '../errors.js';
import { log } from '../log.js';

export interface ConvertCommandOptions {
  input?: string;
  output?: string;
  list: boolean;
  dtype: string;
  /** Output format; default from the output's extension (.pth → pth, else safetensors). */
  to?: string;
}

export async function runConvert(options: ConvertCommandOptions): Promise<void> {
  const { input, output, list } = options;
  if (!input) throw new ConfigError('convert: name the checkpoint to read (convert <input.pth> <output.safetensors>, or convert --list <input>)');
  const { convertCheckpoint, listCheckpoint } = await import('../io/checkpoint.js');
  if (list) {
    if (output) throw new ConfigError(`convert --list takes one file but received a second: ${output}`);
    for (const t of listCheckpoint(input)) console.log(`${t.key}\t${t.dtype}\t[${t.shape.join(', ')}]`);
    return;
  }
  if (!output) throw new ConfigError(`convert: name the safetensors file to write after ${input}`);
  if ((options.to ?? (output.endsWith('.pth') ? 'pth' : 'safetensors')) === 'pth') {
    // Our training checkpoints (PyTorch keys and layouts) → the official {'model': state_dict, 'step'} .pth.
    const { exportPth } = await import('../train/export-pth.js');
    const r = exportPth(input, output);
    log.info(`wrote ${output}: ${r.tensors} tensors in the official .pth layout, step ${r.step}`);
    return;
  }
  const report = convertCheckpoint(input, output, { dtype: options.dtype as 'keep' | 'float32' });
  log.info(`wrote ${output}: ${report.tensors} tensors, ${(report.bytes / 2 ** 20).toFixed(1)} MiB of tensor data`);
}
