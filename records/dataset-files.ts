/** The dataset files of `anvil export`: sorted runs of rows on disk, merged row
 * by row into JSON Lines or Parquet (Arrow batches), so that no more than a
 * partition's rows are ever in memory. */
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { Bool, Field, Float64, Int32, List, Struct, Utf8, makeTable, tableToIPC, vectorFromArray } from 'apache-arrow';
import type { ChatMessage } from '../contracts/record.js';

/** Rows per Parquet row group (and per Arrow batch built on the way). */
const PARQUET_BATCH_ROWS = 8192;

export type SortKey = Array<string | number>;

export function cmpKeys(a: SortKey, b: SortKey): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return typeof x === 'number' ? (x as number) - (y as number) : cmp(x as string, y as string);
  }
  return 0;
}

/** A sorted run: one line per row, its key as JSON, a tab, the row as JSON. */
export function writeRun<R>(file: string, rows: Array<R & { key: SortKey }>, columns: Column<R>[]): string {
  const fd = openSync(file, 'w');
  let chunks: string[] = [];
  let bytes = 0;
  for (const r of rows) {
    // JSON columns are text in every format: the same types in JSON Lines and Parquet.
    const row = Object.fromEntries(
      columns.map((c) => [c.name, c.type === 'json' ? JSON.stringify(r[c.name] ?? null) : (r[c.name] ?? null)]),
    );
    const line = `${JSON.stringify(r.key)}\t${JSON.stringify(row)}\n`;
    chunks.push(line);
    bytes += line.length;
    if (bytes > 1024 ** 2) {
      writeSync(fd, chunks.join(''));
      chunks = [];
      bytes = 0;
    }
  }
  writeSync(fd, chunks.join(''));
  closeSync(fd);
  return file;
}

/** Merges sorted runs, row by row, into the output file. */
export async function writeMerged<R>(
  file: string,
  format: 'jsonl' | 'parquet',
  runs: string[],
  columns: Column<R>[],
): Promise<void> {
  const heads = await Promise.all(
    runs.map(async (r) => {
      const lines = createInterface({ input: createReadStream(r, 'utf8'), crlfDelay: Infinity })[
        Symbol.asyncIterator
      ]();
      const h = { lines, key: null as SortKey | null, row: '' };
      await advance(h);
      return h;
    }),
  );
  const sink = format === 'jsonl' ? jsonlSink(file) : parquetSink(file, columns);
  // A binary heap of the runs by their next key (ties: the earlier run first, for the same bytes every time).
  type Head = (typeof heads)[number] & { run: number };
  const heap: Head[] = heads.map((h, run) => ({ ...h, run })).filter((h) => h.key);
  const less = (a: Head, b: Head) => {
    const c = cmpKeys(a.key!, b.key!);
    return c < 0 || (c === 0 && a.run < b.run);
  };
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  try {
    while (heap.length) {
      const top = heap[0]!;
      await sink.add(top.row);
      await advance(top);
      if (!top.key) {
        heap[0] = heap[heap.length - 1]!;
        heap.pop();
      }
      if (heap.length) down(0);
    }
  } finally {
    await sink.end();
  }
}

async function advance(h: { lines: AsyncIterator<string>; key: SortKey | null; row: string }): Promise<void> {
  const next = await h.lines.next();
  if (next.done) {
    h.key = null;
    return;
  }
  const tab = next.value.indexOf('\t');
  h.key = JSON.parse(next.value.slice(0, tab)) as SortKey;
  h.row = next.value.slice(tab + 1);
}

interface Sink {
  add(rowJson: string): Promise<void>;
  end(): Promise<void>;
}

function jsonlSink(file: string): Sink {
  const fd = openSync(file, 'w');
  let chunks: string[] = [];
  let bytes = 0;
  const flush = () => {
    if (chunks.length) writeSync(fd, chunks.join(''));
    chunks = [];
    bytes = 0;
  };
  return {
    async add(row) {
      chunks.push(row, '\n');
      bytes += row.length + 1;
      if (bytes > 1024 ** 2) flush();
    },
    async end() {
      flush();
      closeSync(fd);
    },
  };
}

/** Rows in batches of PARQUET_BATCH_ROWS, each an Arrow batch handed to
 * parquet-wasm's streaming writer, one row group each. */
function parquetSink<R>(file: string, columns: Column<R>[]): Sink {
  const pq = requireParquet();
  const fd = openSync(file, 'w');
  let batch: R[] = [];
  let failed: unknown = null;
  const source = pulledStream();
  const props = new pq.WriterPropertiesBuilder()
    .setMaxRowGroupSize(PARQUET_BATCH_ROWS)
    .setCompression(pq.Compression.ZSTD)
    .setCreatedBy('anvil export')
    .build();
  const written = pq
    .transformParquetStream(source.stream, props)
    .then((out) => writeAll(fd, out))
    .catch((e: unknown) => {
      failed = e;
    });
  const emit = async () => {
    if (!batch.length) return;
    const ipc = tableToIPC(arrowTable(batch, columns), 'stream');
    batch = [];
    for (const rb of pq.Table.fromIPCStream(ipc).recordBatches()) await source.give(rb, () => failed);
  };
  return {
    async add(row) {
      batch.push(JSON.parse(row) as R);
      if (batch.length >= PARQUET_BATCH_ROWS) await emit();
    },
    async end() {
      await emit();
      source.close();
      await written;
      closeSync(fd);
      if (failed) throw failed;
    },
  };
}

/** A stream the Parquet writer pulls batches from: give() waits until the writer wants one, so
 * only one batch waits at a time. */
function pulledStream() {
  let wanted: (() => void) | null = null;
  let push: ((b: unknown) => void) | null = null;
  let close: (() => void) | null = null;
  const stream = new ReadableStream(
    {
      start(controller) {
        push = (b) => controller.enqueue(b);
        close = () => controller.close();
      },
      pull() {
        return new Promise<void>((resolve) => {
          wanted = resolve;
        });
      },
    },
    { highWaterMark: 1 },
  );
  return {
    stream,
    async give(b: unknown, failed: () => unknown) {
      while (!wanted && !failed()) await new Promise((r) => setImmediate(r));
      if (failed()) throw failed();
      const go = wanted!;
      wanted = null;
      push!(b);
      go();
    },
    close: () => close!(),
  };
}

async function writeAll(fd: number, out: ReadableStream): Promise<void> {
  const reader = out.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    writeSync(fd, value as Uint8Array);
  }
}

export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export type Column<R> = {
  name: keyof R & string;
  type: 'string' | 'int' | 'float' | 'bool' | 'messages' | 'json' | 'strings' | 'ints' | 'floats';
};

function arrowTable<R>(rows: R[], columns: Column<R>[]) {
  const message = new Struct([new Field('role', new Utf8()), new Field('content', new Utf8())]);
  const vectors = Object.fromEntries(
    columns.map((c) => {
      const data = rows.map((r) => r[c.name] as unknown);
      switch (c.type) {
        case 'string':
          return [c.name, vectorFromArray(data as string[], new Utf8())];
        case 'int':
          return [c.name, vectorFromArray(data as number[], new Int32())];
        case 'float':
          return [c.name, vectorFromArray(data as (number | null)[], new Float64())];
        case 'bool':
          return [c.name, vectorFromArray(data as boolean[], new Bool())];
        case 'messages':
          return [c.name, vectorFromArray(data as ChatMessage[][], new List(new Field('item', message)))];
        case 'strings':
          return [c.name, vectorFromArray(data as string[][], new List(new Field('item', new Utf8())))];
        case 'ints':
          return [c.name, vectorFromArray(data as (number[] | null)[], new List(new Field('item', new Int32())))];
        case 'floats':
          return [c.name, vectorFromArray(data as (number[] | null)[], new List(new Field('item', new Float64())))];
        case 'json':
          // Free-form maps (reward components, the client's meta) are JSON text, in JSON Lines too (see writeRun).
          return [c.name, vectorFromArray(data as string[], new Utf8())];
      }
    }),
  );
  return makeTable(vectors);
}

const require = createRequire(import.meta.url);
function requireParquet(): typeof import('parquet-wasm/node') {
  return require('parquet-wasm/node') as typeof import('parquet-wasm/node');
}
