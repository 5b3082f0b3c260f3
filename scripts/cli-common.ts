/** What the `anvil` commands share: usage errors, and the configuration file that
 * `serve`, `eval` and `worker` read alike. */
import { existsSync, readFileSync } from 'node:fs';
import { ZodError } from 'zod';
import { ServerConfigSchema } from '../env/config.js';
import { AnvilError } from '../sandbox/errors.js';
import type { ServiceSettings } from '../sandbox/service.js';

/** A wrong command line: one line, then the command's usage. */
export class UsageError extends Error {}

export function fail(message: string): never {
  throw new UsageError(message);
}

/** --config FILE: a JSON object of the settings in env/config.ts; none without a file. */
export function readConfig(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  if (!existsSync(file)) throw new AnvilError('file_not_found', `no such file: ${file}`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new AnvilError('invalid_argument', `${file}: ${(e as Error).message}`);
  }
}

/** Builds from a configuration; a setting that does not validate is a typed error naming it. */
export function checked<T>(build: () => T): T {
  try {
    return build();
  } catch (e) {
    if (e instanceof ZodError)
      throw new AnvilError(
        'invalid_argument',
        `configuration: ${e.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    throw e;
  }
}

/** The evaluation settings of a configuration file (eval for C, torch for the torch backend), checked
 * as the server checks them, so one file configures the server, `anvil eval` and the workers alike. */
export function evaluationSettings(file: string | undefined, unsandboxed: boolean | undefined): ServiceSettings {
  const c = checked(() => ServerConfigSchema.partial().parse(readConfig(file)));
  return { cacheSize: c.cacheSize, eval: c.eval, torch: c.torch, allowUnsandboxed: unsandboxed || c.allowUnsandboxed };
}
