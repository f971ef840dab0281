/**
 * The command line. Parse, lazy-import the handler, call one library function, catch once. Nothing here imports
 * tfjs: `--help` and argument errors stay instant; handlers load heavy modules themselves.
 */
import yargs, { type Argv } from 'yargs';
import { ConfigError, FlashDepthError } from '../errors.js';
import { levelFromFlags, log } from '../log.js';
import { LATER_COMMANDS, notImplementedYet } from './later.js';

const REPLAY_OPTION = {
  type: 'boolean',
  default: true,
  describe: 'webgpu: from each sequence\'s 4th frame on, replay the 3rd one\'s recorded GPU commands (the same GPU work, without tfjs\' per-op host cost; --no-replay: every frame through tfjs)',
} as const;
const PRECISION_OPTION = {
  type: 'string',
  choices: ['fp32', 'mixed'],
  describe: 'mixed: linear layers, 3×3/1×1 convolutions, conv-transposes and attention on tensor cores (f16 operands, f32 accumulation; webgpu with subgroup matrices, else fp32). Default: FLASHDEPTH_PRECISION, else fp32',
} as const;
const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;

interface GlobalFlags {
  verbose: boolean;
  quiet: boolean;
}

function buildParser(argv: string[]): Argv<GlobalFlags> {
  let parser = yargs(argv)
    .scriptName('flashdepth')
    .usage('$0 <command> [options]\n\nFlashDepth (streaming video depth) on TensorFlow.js.')
    .option('verbose', { type: 'boolean', default: false, describe: 'Debug logging; stack traces on errors' })
    .option('quiet', { type: 'boolean', default: false, describe: 'Only errors on stderr' })
    .middleware((flags) => {
      log.level = levelFromFlags(flags);
    })
    .command(
      'backend',
      'Select a backend, print its line and run a 64×64 matmul check',
      (y) =>
        y
          .option('backend', { type: 'string', choices: BACKENDS, default: 'auto', describe: 'Compute backend' })
          .option('threads', { type: 'number', describe: 'wasm threads (default: $FLASHDEPTH_WASM_THREADS, else every core, at most 8)' })
          .option('ffmpeg', { type: 'string', describe: 'ffmpeg binary (default: $FFMPEG_PATH, ffmpeg-static, @ffmpeg-installer/ffmpeg, PATH)' })
          .option('ffprobe', { type: 'string', describe: 'ffprobe binary (default: $FFPROBE_PATH, beside ffmpeg, PATH)' }),
      async (args) => {
        const { runBackendCheck } = await import('./backend-command.js');
        await runBackendCheck(args);
      },
    )
    .command(
      'convert [input] [output]',
      'Convert a PyTorch .pth checkpoint to safetensors, or list its tensors with --list',
      (y) =>
        y
          .positional('input', { type: 'string', describe: 'Checkpoint to read (.pth or .safetensors)' })
          .positional('output', { type: 'string', describe: 'safetensors file to write' })
          .option('list', { type: 'boolean', default: false, describe: 'Print name, dtype and shape of every tensor instead of converting' })
          .option('dtype', { type: 'string', choices: ['keep', 'float32'], default: 'keep', describe: 'Stored dtype of the output tensors (keep = bit-exact)' })
          .option('to', { type: 'string', choices: ['safetensors', 'pth'], describe: 'Output format (default: from the output extension); pth writes the official {model, step} layout PyTorch loads' })
          .example('$0 convert configs/flashdepth-s/iter_1000.safetensors iter_1000.pth', 'training checkpoint → official .pth')
          .example('$0 convert in.pth out.safetensors', 'convert')
          .example('$0 convert --list in.pth', 'list tensors'),
      async (args) => {
        const { runConvert } = await import('./convert-command.js');
        await runConvert(args);
      },
    )
    .command(
      'bench',
      'Time streaming inference on random frames (ms/frame, FPS, memory) like the reference dummy_timing, or with --train full training steps (s/step, clips/s)',
      (y) =>
        y
          .option('config', { type: 'string', array: true, default: ['s'], describe: 'Variant (s, l, full) or config folder; repeat to bench several' })
          .option('resolution', { type: 'string', describe: 'Frame size WxH, multiples of 14 (default: 518x518 for S/L, 2044x1148 for Full; --train: the config\'s training size, 518x518 base)' })
          .option('frames', { type: 'number', describe: 'Timed frames (default: 100); with --train, timed optimiser steps (default: 10)' })
          .option('warmup', { type: 'number', describe: 'Untimed warm-up frames, read back one by one (default: 5); with --train, warm-up steps (default: 2)' })
          .option('sync', { type: 'string', describe: 'end|frame. end: drain the queue once after the last frame, no per-frame readback (what the reference times); frame: read every depth back, per-frame latency median/p90 (default: end)' })
          .option('train', { type: 'boolean', default: false, describe: 'Time training steps instead (forward + backward + AdamW; synthetic clips, batch 1, temporary run folder)' })
          .option('clip-frames', { type: 'number', describe: 'With --train: frames per clip (default: 5, the reference\'s dataset.video_length)' })
          .option('backend', { type: 'string', choices: BACKENDS, default: 'auto', describe: 'Compute backend' })
          .option('checkpoint', { type: 'string', describe: 'Weights to load (default: random weights)' })
          .option('json', { type: 'string', describe: 'Write the results as JSON to this file' })
          .option('set', { type: 'string', array: true, describe: 'Config overrides key.sub=value' })
          .option('profile', { type: 'boolean', default: false, describe: 'Also time each kernel of one frame (timestamp queries on webgpu)' })
          .option('precision', PRECISION_OPTION)
          .option('replay', REPLAY_OPTION)
          .example('$0 bench --config s --frames 20 --backend webgpu', 'FlashDepth-S at 518×518, ms/frame = wall / frames')
          .example('$0 bench --config s --frames 20 --backend webgpu --sync frame', 'the same with every depth read back: per-frame latency')
          .example('$0 bench --config full --backend webgpu --precision mixed', 'Full at 2K on tensor cores')
          .example('$0 bench --config full --resolution 2044x1148 --json bench.json', 'Full at 2K')
          .example('$0 bench --train --config s --backend webgpu', 'stage-1 training steps of FlashDepth-S: 518×518, 5-frame clips, batch 1'),
      async (args) => {
        const { runBench } = await import('./bench-command.js');
        await runBench(args);
      },
    )
    .command(
      'data <action> <dataRoot>',
      'Dataset tools: `check` walks the datasets under a root, counts scenes/frames/clips, lists bad files, renders a preview',
      (y) =>
        y
          .positional('action', { type: 'string', choices: ['check'], describe: 'What to do' })
          .positional('dataRoot', { type: 'string', demandOption: true, describe: 'Folder holding the dataset folders' })
          .option('datasets', { type: 'string', describe: 'Comma-separated datasets (default: every one found)' })
          .option('preview', { type: 'string', describe: 'Write a preview PNG of one clip (RGB over colour-mapped depth)' })
          .option('decode-all', { type: 'boolean', default: false, describe: 'Decode every frame, not the first and last of each scene' })
          .option('json', { type: 'string', describe: 'Write the report as JSON' })
          .example('$0 data check /data --datasets sintel,spring --preview preview.png', 'check two datasets'),
      async (args) => {
        const { runDataCheck } = await import('./data-command.js');
        await runDataCheck({ dataRoot: args.dataRoot as string, datasets: args.datasets, preview: args.preview, decodeAll: args['decode-all'] as boolean, json: args.json });
      },
    );
  parser = parser
    .command(
      'infer [inputs..]',
      'Depth for videos, image folders, globs, stream URLs and webcams: .npy/PNG/mp4 per frame, summary.json',
      (y) =>
        y
          .positional('inputs', { type: 'string', array: true, describe: 'Videos, image folders, globs, rtsp/http(s) URLs or /dev/videoN; each is one sequence' })
          .option('config', { type: 'string', default: 'configs/flashdepth', describe: 'Config folder (configs/flashdepth = Full, configs/flashdepth-l, configs/flashdepth-s) or variant s|l|full' })
          .option('checkpoint', { type: 'string', alias: 'load', describe: 'Weights .pth/.safetensors (default: config load, else newest iter_*.pth in the config folder, else checkpoints/<variant>.pth)' })
          .option('random-weights', { type: 'boolean', default: false, describe: 'Random weights instead of a checkpoint: timing and smoke runs only (the depth is meaningless)' })
          .option('precision', PRECISION_OPTION)
          .option('replay', REPLAY_OPTION)
          .option('backend', { type: 'string', choices: BACKENDS, default: 'auto', describe: 'Compute backend' })
          .option('max-frames', { type: 'number', describe: 'Stop each sequence after this many frames (default: all)' })
          .option('target-fps', { type: 'number', describe: 'Frame rate to process: files are resampled, live streams drop frames to keep up (default: every frame)' })
          .option('long-side', { type: 'number', default: 2044, describe: 'Cap on the long side before snapping to multiples of 14' })
          .option('out', { type: 'string', describe: 'Output folder (default: result/<input name>; an existing one gets _1, _2, …; with several sequences, one subfolder each)' })
          .option('npy', { type: 'boolean', default: true, describe: 'depth_npy/: float32 inverse depth per frame at the processed resolution (--no-npy: off)' })
          .option('png16', { type: 'boolean', default: false, describe: 'depth_png16/: 16-bit PNG per frame (depth × 64)' })
          .option('color-png', { type: 'boolean', default: false, describe: 'depth_color/: colour-mapped PNG per frame' })
          .option('depth-mp4', { type: 'boolean', default: true, describe: 'depth.mp4: colour-mapped depth video' })
          .option('side-by-side', { type: 'boolean', default: true, describe: 'side_by_side.mp4: RGB | colour-mapped depth' })
          .option('colormap', { type: 'string', choices: ['inferno', 'turbo', 'viridis', 'grey'], default: 'inferno', describe: 'Colour map of the PNG and mp4 outputs' })
          .option('normalize', { type: 'string', choices: ['video', 'frame'], default: 'video', describe: 'Colour range: min/max over the whole video (as the reference) or per frame' })
          .example('$0 infer examples/example.mp4 --config configs/flashdepth-s', 'FlashDepth-S on the example clip → result/example/')
          .example('$0 infer frames/ --max-frames 50 --color-png --no-side-by-side', 'a folder of images'),
      async (args) => {
        const { runInfer } = await import('./infer-command.js');
        await runInfer({
          inputs: args.inputs, config: args.config, checkpoint: args.checkpoint, randomWeights: args['random-weights'], backend: args.backend, precision: args.precision, replay: args.replay, maxFrames: args['max-frames'],
          targetFps: args['target-fps'], longSide: args['long-side'], out: args.out, npy: args.npy, png16: args.png16,
          colorPng: args['color-png'], depthMp4: args['depth-mp4'], sideBySide: args['side-by-side'], colormap: args.colormap, normalize: args.normalize,
        });
      },
    )
    .command(
      'weights <action> [name]',
      'List the published checkpoints and which are present, or download one (resume, size/sha256 check)',
      (y) =>
        y
          .positional('action', { type: 'string', choices: ['list', 'download'], describe: 'list: known weights and what is present; download: fetch one' })
          .positional('name', { type: 'string', describe: 'flashdepth, flashdepth-l, flashdepth-s, dav2-vits or dav2-vitl' })
          .option('dir', { type: 'string', default: 'checkpoints', describe: 'Folder the weights go in' })
          .option('url', { type: 'string', describe: 'Download from this URL instead of the published one (a mirror)' })
          .option('force', { type: 'boolean', default: false, describe: 'Download again even if the file is present' })
          .example('$0 weights download flashdepth-s', 'checkpoints/flashdepth-s.pth')
          .example('$0 weights list', 'what is known and present'),
      async (args) => {
        const { runWeights } = await import('./weights-command.js');
        await runWeights({ action: args.action, name: args.name, dir: args.dir, url: args.url, force: args.force });
      },
    );
  parser = parser.command(
    'eval',
    'Evaluate on the reference test sets (AbsRel, δ1, boundary F1 after per-sequence alignment): tables, metrics.json, sequences.csv',
    (y) =>
      y
        .option('config', { type: 'string', describe: 'Variant (s, l, full) or config folder of the model to run' })
        .option('checkpoint', { type: 'string', alias: 'load', describe: 'Weights .pth/.safetensors (default: the config\'s load)' })
        .option('predictions', { type: 'string', describe: 'Evaluate saved predictions instead of a model: <folder>/<dataset>/<sequence>/<frame>.npy (or frame_<i>.npy)' })
        .option('datasets', { type: 'string', describe: 'Comma-separated (default: eval.test_datasets, i.e. unreal4k,sintel,eth3d,waymo,urbansyn)' })
        .option('data-root', { type: 'string', describe: 'Folder holding the dataset folders (default: dataset.data_root)' })
        .option('resolution', { type: 'string', choices: ['base', '2k'], describe: 'Test sizes of spec §6.3 (default: eval.test_dataset_resolution)' })
        .option('split', { type: 'string', choices: ['test', 'val'], default: 'test', describe: 'test: Waymo\'s 30 test segments, all scenes elsewhere; val: the first 8 scenes' })
        .option('max-sequences', { type: 'number', describe: 'Only the first N sequences of each dataset' })
        .option('max-frames', { type: 'number', describe: 'Only the first N frames of each sequence' })
        .option('input-size', { type: 'string', describe: 'Model input WxH (multiples of 14) instead of the test size, for quick runs' })
        .option('out', { type: 'string', default: 'result/eval', describe: 'Output folder: metrics.json, sequences.csv, predictions/, vis/' })
        .option('save-vis', { type: 'boolean', default: false, describe: 'vis/<dataset>/<sequence>/<frame>.png: aligned prediction | GT' })
        .option('backend', { type: 'string', choices: BACKENDS, default: 'auto', describe: 'Compute backend' })
        .option('set', { type: 'string', array: true, describe: 'Config overrides key.sub=value' })
        .example('$0 eval --config s --checkpoint checkpoints/flashdepth-s.pth --data-root /data --datasets sintel,eth3d', 'FlashDepth-S at base resolution')
        .example('$0 eval --predictions torch_out/ --data-root /data --datasets sintel', 'score saved .npy predictions'),
    async (args) => {
      const { runEvalCommand } = await import('./eval-command.js');
      await runEvalCommand({
        config: args.config, checkpoint: args.checkpoint, predictions: args.predictions, datasets: args.datasets, dataRoot: args['data-root'],
        resolution: args.resolution, split: args.split, maxSequences: args['max-sequences'], maxFrames: args['max-frames'],
        inputSize: args['input-size'], out: args.out, saveVis: args['save-vis'], backend: args.backend, set: args.set,
      });
    },
  );
  for (const stage of ['train', 'distill'] as const) {
    parser = parser.command(
      `${stage} [overrides..]`,
      stage === 'train'
        ? 'Stage-1 training (FlashDepth-S / -L) from Depth Anything V2 weights: checkpoints, resume, train_log.jsonl, train_plot.html'
        : 'Stage-2 hybrid distillation (FlashDepth Full): student from FlashDepth-S, frozen teacher from FlashDepth-L, fresh fusion',
      (y) =>
        y
          .positional('overrides', { type: 'string', array: true, describe: 'Config overrides key.sub=value (e.g. dataset.data_root=/data)' })
          .option('config', { type: 'string', default: stage === 'train' ? 'configs/flashdepth-l' : 'configs/flashdepth', describe: 'Config folder; checkpoints go there unless --out' })
          .option('load', { type: 'string', describe: stage === 'train' ? 'Pretrained weights (DA-V2 .pth), loaded non-strictly' : 'FlashDepth-S checkpoint for the student' })
          .option('teacher', { type: 'string', describe: 'FlashDepth-L checkpoint for the frozen teacher (distill)' })
          .option('backend', { type: 'string', choices: BACKENDS, default: 'auto', describe: 'Compute backend' })
          .option('synthetic', { type: 'boolean', default: false, describe: 'Train on generated clips (no dataset on disk): timing and smoke runs' })
          .option('size', { type: 'string', describe: 'Synthetic clip size WxH (default: 518x518 base, 1918x1078 2k)' })
          .option('max-steps', { type: 'number', describe: 'Stop after this many optimiser steps (default: training.total_iters)' })
          .option('out', { type: 'string', describe: 'Run folder for checkpoints and logs (default: the config folder)' })
          .option('keep-last', { type: 'number', default: 3, describe: 'Checkpoints kept (0 = all)' })
          .option('clip-grad-norm', { type: 'number', describe: 'Clip the global gradient norm (default: off, like the reference)' })
          .option('resume', { type: 'boolean', default: true, describe: 'Resume from the newest iter_* checkpoint in the run folder (--no-resume: start over)' })
          .option('val-batches', { type: 'number', default: 2, describe: 'Synthetic runs: batches per validation (every training.val_freq steps)' })
          .option('val-sequences', { type: 'number', default: 2, describe: 'Real data: validate on the first N val sequences of each dataset.val_datasets (every training.val_freq steps)' })
          .option('val-frames', { type: 'number', default: 8, describe: 'Real data: first N frames of each val sequence' })
          .option('val-size', { type: 'string', describe: 'Real data: model input size WxH for validation (default: each dataset\'s val size)' })
          .option('set', { type: 'string', array: true, describe: 'Config overrides key.sub=value' })
          .example(`$0 ${stage === 'train' ? 'train --config configs/flashdepth-s --load checkpoints/depth_anything_v2_vits.pth dataset.data_root=/data' : 'distill --config configs/flashdepth --load s.pth --teacher l.pth dataset.data_root=/data'}`, stage === 'train' ? 'stage 1' : 'stage 2')
          .example(`$0 ${stage} --config configs/${stage === 'train' ? 'flashdepth-s' : 'flashdepth'} --backend webgpu --synthetic --max-steps 3 --no-resume --out /tmp/run`, 'GPU timing on synthetic data'),
      async (args) => {
        const { runTrainCommand } = await import('./train-command.js');
        await runTrainCommand({
          stage, config: args.config, overrides: args.overrides, set: args.set, load: args.load, teacher: args.teacher, backend: args.backend,
          synthetic: args.synthetic, size: args.size, maxSteps: args['max-steps'], out: args.out, keepLast: args['keep-last'],
          clipGradNorm: args['clip-grad-norm'], resume: args.resume, valBatches: args['val-batches'],
          valSequences: args['val-sequences'], valFrames: args['val-frames'], valSize: args['val-size'],
        });
      },
    );
  }
  for (const later of LATER_COMMANDS) {
    parser = parser.command(
      later.name,
      `${later.describe} (not implemented yet: issue ${later.issue})`,
      (y) => y.strict(false),
      () => {
        throw notImplementedYet(later);
      },
    );
  }
  return parser
    .demandCommand(1, 'Name a command (see --help)')
    .strict()
    .help()
    .alias('help', 'h')
    .version(false)
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((message, err) => {
      // yargs' own usage errors (unknown flag, bad choice) arrive as a message; handler errors as err.
      throw err ?? new ConfigError(message.replace(/\s*\n\s*/g, ' '));
    });
}

/** Runs the CLI; returns the exit code. Errors print as one `error: <message>` line (a stack only with --verbose). */
export async function runCli(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  try {
    await buildParser(argv).parseAsync();
    return 0;
  } catch (err) {
    if (err instanceof FlashDepthError) {
      log.error(err.message);
      if (verbose && err.stack) log.debug(err.stack);
      return err.exitCode;
    }
    // Unexpected: a bug, so the stack always helps.
    log.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 1;
  }
}
