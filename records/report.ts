/** `anvil report`: one self-contained HTML file for a run — the dashboard's
 * charts over the run's logs, fast_p, the best kernels, hack flags and the
 * slowest stages, with the episodes behind them. No network needed to open it. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { eachTurnLog } from './logs.js';
import type { StoredTurnRecord } from '../contracts/record.js';
import { emptyRange, episodeView, RunStatsBuilder, widenRange } from './stats.js';

const UI = path.join(PACKAGE_ROOT, 'env', 'ui');

/** The dashboard page with its script inlined and `data` embedded. */
export function selfContainedPage(data: unknown): string {
  const html = readFileSync(path.join(UI, 'index.html'), 'utf8');
  const script = readFileSync(path.join(UI, 'app.js'), 'utf8');
  // JSON inside <script>: neither `</script>` nor `<!--` may appear literally.
  const json = JSON.stringify(data).replace(/</g, '\\u003c');
  return html
    .replace('<script>/*ANVIL_DATA*/</script>', () => `<script>window.ANVIL_DATA = ${json};</script>`)
    .replace(
      '<script src="ui/app.js"></script>',
      () => `<script>${script.replace(/<\/script/gi, '<\\/script')}</script>`,
    );
}

/** Three streamed passes over the logs: the run's span and reward range, the
 * statistics, then the records of the episodes the report shows. */
export async function writeReport(opts: {
  logs: string;
  out: string;
  onProgress?: (read: number, total: number) => void;
}) {
  const range = emptyRange();
  const first = await eachTurnLog(opts.logs, (r) => widenRange(range, r), opts.onProgress);
  const builder = new RunStatsBuilder(range);
  await eachTurnLog(opts.logs, (r) => builder.add(r));
  const stats = builder.result();
  const recent = builder.recentEpisodes(200);
  const wanted = new Set([...recent.map((e) => e.episode), ...stats.best.map((b) => b.episode)]);
  const shown: StoredTurnRecord[] = [];
  await eachTurnLog(opts.logs, (r) => {
    if (wanted.has(r.episode)) shown.push(r);
  });
  const episodes = [...wanted].map((id) => episodeView(shown, id)).filter((e) => e !== null);
  const page = selfContainedPage({
    source: path.resolve(opts.logs),
    written: new Date().toISOString(),
    stats,
    recent,
    episodes,
  });
  writeFileSync(opts.out, page);
  return {
    records: first.records,
    files: first.files,
    skipped: first.skipped,
    episodes: stats.episodes,
    bytes: Buffer.byteLength(page),
  };
}
