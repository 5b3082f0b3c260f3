/** Where the package's own files live, whether running from `dist/` or not. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'anvil') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the anvil package root');
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot();
export const PACKAGE_VERSION: string = JSON.parse(
  readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8'),
).version;
export const NATIVE_DIR = path.join(PACKAGE_ROOT, 'sandbox', 'c');
export const TASKS_DIR = path.join(PACKAGE_ROOT, 'tasks');
