/** Commands whose feature lands with a later issue: they exist (so `--help` is complete) and say where they stand. */
import { NotImplementedYetError } from '../errors.js';

export interface LaterCommand {
  name: string;
  describe: string;
  issue: string;
}

export const LATER_COMMANDS: readonly LaterCommand[] = [];

export function notImplementedYet(command: LaterCommand): NotImplementedYetError {
  return new NotImplementedYetError(`${command.name}: not implemented yet (issue ${command.issue})`);
}
