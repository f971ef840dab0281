#!/usr/bin/env node
/** `flashdepth <command>` / `npm run <command>`: see app.ts. */
import { hideBin } from 'yargs/helpers';
import { runCli } from './app.js';

const code = await runCli(hideBin(process.argv));
process.exitCode = code;
// Backends release what they hold; this only guards against a stray handle turning a finished command into a hang.
setTimeout(() => process.exit(code), 2000).unref();
