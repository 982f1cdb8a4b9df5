// Helpers for the cluster tests: the nodes and nginx of scripts/cluster.sh, reached with the
// integration suite's REST/WebSocket client (ChatdServer with a fixed port, never spawned).
import { execFile, execFileSync } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ChatdServer, REPO_ROOT } from '../integration/lib/harness.mjs';

export const BASE = Number(process.env.CLUSTER_PORT_BASE ?? 18080);
export const CLUSTER_SH = path.join(REPO_ROOT, 'scripts', 'cluster.sh');
export const PG_SH = path.join(REPO_ROOT, 'scripts', 'pg-test-server.sh');

/** An endpoint of the running cluster: 0 = nginx, 1..3 = node N. */
export function endpoint(n) {
  const s = new ChatdServer({ dataDir: null, extra: [], env: {}, label: n === 0 ? 'nginx' : `node${n}` });
  s.port = BASE + n;
  return s;
}

export function cluster(...args) {
  return execFileSync(CLUSTER_SH, args, { encoding: 'utf8', env: process.env, stdio: ['ignore', 'pipe', 'inherit'] });
}

export const isMsgFor = (convId) => (f) => f.type === 'message' && f.message && f.message.conversation_id === convId;

const execFileAsync = promisify(execFile);

/** Like cluster(), without blocking the event loop: the clients keep running meanwhile. */
export async function clusterAsync(...args) {
  const { stdout } = await execFileAsync(CLUSTER_SH, args, { encoding: 'utf8', env: process.env });
  return stdout;
}

/** scripts/pg-test-server.sh start|stop (CHATD_PG_PORT picks the instance), without blocking. */
export async function pgServer(command) {
  await execFileAsync(PG_SH, [command], { encoding: 'utf8', env: process.env });
}
