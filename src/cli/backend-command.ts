/** `npm run backend -- --backend <name>`: the backend line (stderr), a matmul check and the media tools (stdout). */
import type { BackendName } from '../backend/index.js';
import { FlashDepthError } from '../errors.js';

export interface BackendCheckOptions {
  backend: string;
  threads?: number;
  ffmpeg?: string;
  ffprobe?: string;
}

export async function runBackendCheck(options: BackendCheckOptions): Promise<void> {
  const { selectBackend, releaseBackend } = await import('../backend/index.js');
  const { checkMatmul } = await import('../backend/check.js');
  const info = await selectBackend(options.backend as BackendName, { threads: options.threads });
  try {
    const check = await checkMatmul(64);
    console.log(`op check: ${check.n}×${check.n} matmul on ${info.name}: max |tf − js| = ${check.maxAbsError.toExponential(2)} (ok)`);
  } finally {
    releaseBackend();
  }
  const { describeBinary, resolveFfmpeg, resolveFfprobe } = await import('../media/ffmpeg.js');
  for (const [name, resolve] of [
    ['ffmpeg', resolveFfmpeg],
    ['ffprobe', resolveFfprobe],
  ] as const) {
    try {
      console.log(describeBinary(name, resolve(options)));
    } catch (err) {
      if (!(err instanceof FlashDepthError)) throw err;
      console.log(err.message);
    }
  }
}
