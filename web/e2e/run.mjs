// npm run e2e: builds web/dist if missing, then runs every e2e/*.test.mjs with node:test (one at a time).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const web = new URL('..', import.meta.url).pathname;
if (!existsSync(join(web, 'dist', 'index.html')) || process.env.E2E_BUILD === '1') {
  const b = spawnSync('npm', ['run', 'build'], { cwd: web, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
const only = process.argv.slice(2);
const files = readdirSync(join(web, 'e2e'))
  .filter((f) => f.endsWith('.test.mjs'))
  .filter((f) => !only.length || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join('e2e', f));
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { cwd: web, stdio: 'inherit' });
process.exit(r.status ?? 1);
