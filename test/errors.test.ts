/** The one error registry (contracts/errors.ts) against what others read: the
 * protocol's documentation, both clients' error classes, the OpenEnv door's
 * documentation and the judges' flag kinds. Adding a code in one place and not
 * the others fails here. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ERROR_CODES } from '../clients/ts/client.js';
import {
  FLAG_KINDS,
  OPENENV_ERRORS,
  PROTOCOL_ERRORS,
  STEP_OUTCOMES,
  doorHttpStatus,
  httpStatus,
  type ProtocolErrorCode,
} from '../contracts/errors.js';
import { feedbackText } from '../env/feedback.js';
import type { TurnRecord } from '../contracts/record.js';
import { runStats } from '../records/stats.js';
import type { EvalResult } from '../sandbox/result.js';
import { PACKAGE_ROOT } from '../tasks/paths.js';
import { turnRecord } from './helpers.js';

const read = (file: string) => readFileSync(path.join(PACKAGE_ROOT, file), 'utf8');
const codes = Object.keys(PROTOCOL_ERRORS).sort();

/** The rows of the error table in docs/protocol.md: code → retryable, HTTP status (null for —). */
function documentedErrors(): Map<string, { retryable: boolean; http: number | null }> {
  const doc = read('docs/protocol.md');
  const table = doc.slice(doc.indexOf('| code | when | retryable | HTTP |'));
  const rows = new Map<string, { retryable: boolean; http: number | null }>();
  for (const line of table.split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').map((c) => c.trim());
    const [names, retryable, http] = [cells[1]!, cells.at(-3)!, cells.at(-2)!];
    for (const [, code] of names.matchAll(/`(\w+)`/g))
      rows.set(code!, { retryable: retryable === 'yes', http: http === '—' ? null : Number(http) });
  }
  return rows;
}

t.test('docs/protocol.md documents every protocol error code, and only those, with the same facts', async (t) => {
  const doc = documentedErrors();
  t.same([...doc.keys()].sort(), codes, 'the same codes');
  for (const [code, facts] of Object.entries(PROTOCOL_ERRORS) as [
    ProtocolErrorCode,
    { retryable: boolean; http?: number },
  ][]) {
    t.equal(doc.get(code)?.retryable, facts.retryable, `${code}: retryable`);
    t.equal(doc.get(code)?.http, facts.http ?? null, `${code}: HTTP status`);
  }
});

t.test('HTTP statuses come from the registry, for the socket protocol and for the OpenEnv door', async (t) => {
  t.equal(httpStatus('unauthorized'), 401);
  t.equal(httpStatus('unknown_op'), 500, 'a code with no HTTP status answers 500');
  t.equal(doorHttpStatus('VALIDATION_ERROR'), 422);
  t.equal(
    doorHttpStatus('STEP_IN_FLIGHT'),
    409,
    "the door answers protocol codes in capitals with the protocol's status",
  );
  t.equal(doorHttpStatus('SESSION_ERROR'), 500);
  t.equal(doorHttpStatus('toString'), 500, 'a name of Object.prototype is no code');
});

t.test("docs/trainers.md names the OpenEnv door's own codes, and only those", async (t) => {
  const doc = read('docs/trainers.md');
  const para = doc.slice(doc.indexOf('**Errors**'), doc.indexOf('**HTTP**'));
  const named = new Set(
    [...para.matchAll(/`([A-Z_]+)`/g)]
      .map((m) => m[1]!)
      .filter((c) => !Object.hasOwn(PROTOCOL_ERRORS, c.toLowerCase())),
  );
  t.same([...named].sort(), Object.keys(OPENENV_ERRORS).sort());
});

t.test('docs/protocol.md lists every step outcome (info.outcome), and only those', async (t) => {
  const doc = read('docs/protocol.md');
  const item = doc.slice(doc.indexOf('`info.outcome` is one of'), doc.indexOf('### cancel'));
  t.same(
    [...item.matchAll(/`(\w+)`/g)]
      .map((m) => m[1])
      .filter((c) => c !== 'outcome')
      .sort(),
    Object.keys(STEP_OUTCOMES).sort(),
  );
});

t.test("the TypeScript client's ERROR_CODES: every protocol error code, none extra, the same retryable", async (t) => {
  t.same(Object.keys(ERROR_CODES).sort(), codes);
  for (const [code, retryable] of Object.entries(ERROR_CODES))
    t.equal(retryable, PROTOCOL_ERRORS[code as ProtocolErrorCode]?.retryable, code);
});

t.test('the Python client: one exception class per protocol error code, none extra', async (t) => {
  // errors.py is loaded by its path: the package's other modules need websockets and msgpack.
  const file = path.join(PACKAGE_ROOT, 'clients', 'python', 'anvil_client', 'errors.py');
  const script = [
    'import importlib.util, json, sys',
    'spec = importlib.util.spec_from_file_location("errors", sys.argv[1])',
    'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)',
    'print(json.dumps({code: [cls.__name__, issubclass(cls, m.AnvilError), cls.code] for code, cls in m.ERRORS.items()}))',
  ].join('\n');
  const classes = JSON.parse(execFileSync('python3', ['-c', script, file], { encoding: 'utf8' })) as Record<
    string,
    [string, boolean, string]
  >;
  t.same(Object.keys(classes).sort(), codes);
  for (const [code, [name, isAnvil, own]] of Object.entries(classes)) {
    t.ok(isAnvil, `${name} is an AnvilError`);
    t.equal(own, code, `${name}.code`);
  }
  const names = Object.values(classes).map(([n]) => n);
  t.equal(new Set(names).size, names.length, 'one class per code');
});

/** Every flag kind the sources raise: the C judge, the torch judge and checks, and the TypeScript evaluators and checks. */
function raisedFlagKinds(): Set<string> {
  const kinds = new Set<string>();
  const add = (text: string, re: RegExp) => {
    for (const m of text.matchAll(re)) for (const k of m.slice(1)) if (k) kinds.add(k);
  };
  // \s* after the paren: the formatter may put the kind on the next line.
  add(read('sandbox/c/judge.c'), /(?:emit_flag|hack)\(\s*"(\w+)"/g);
  for (const f of readdirSync(path.join(PACKAGE_ROOT, 'sandbox', 'torch')).filter((f) => f.endsWith('.py'))) {
    const text = read(`sandbox/torch/${f}`);
    add(text, /\b(?:flag|Finding)\(\s*"(\w+)"/g);
    add(text, /"hack": "(\w+)"/g);
  }
  for (const f of readdirSync(path.join(PACKAGE_ROOT, 'sandbox')).filter((f) => f.endsWith('.ts'))) {
    const text = read(`sandbox/${f}`);
    add(text, /violation\(\s*'(\w+)'/g);
    add(text, /violation\([^)]*\? '(\w+)' : '(\w+)'/g);
    add(text, /kind: '(\w+)'(?: as const)?,\s*evidence/g);
  }
  // Torch findings that are static_violations without a flag (sandbox/torch/judge.py).
  kinds.delete('syntax_error');
  kinds.delete('no_model');
  return kinds;
}

t.test(
  'every flag kind the judges, checks and evaluators raise is in the registry, and every registered kind is raised',
  async (t) => {
    const raised = raisedFlagKinds();
    t.ok(raised.size >= 30, `found ${raised.size} raised kinds`);
    t.same(
      [...raised].filter((k) => !Object.hasOwn(FLAG_KINDS, k)),
      [],
      'raised but not registered',
    );
    t.same(
      Object.keys(FLAG_KINDS).filter((k) => !raised.has(k)),
      [],
      'registered but never raised',
    );
  },
);

t.test('a flag kind that is also a name on Object.prototype (constructor) counts as itself', async (t) => {
  const turn = (i: number): TurnRecord =>
    turnRecord(0, {
      time: new Date(1_700_000_000_000 + i).toISOString(),
      episode: `e${i}`,
      eval: {
        outcome: 'static_violation',
        correct: false,
        speedup: null,
        profileShare: null,
        flags: [{ kind: 'constructor', evidence: 'x' }],
        message: 'x',
        cached: false,
        codeHash: 'h',
        sandbox: 'bwrap',
        stages: [],
      },
    });
  t.same(runStats([turn(0), turn(1)]).flags, { constructor: 2 }, 'run statistics');
  const hack = {
    outcome: 'hack_detected',
    flags: [{ kind: 'constructor', evidence: 'x' }],
    stages: [],
    message: '',
  } as unknown as EvalResult;
  t.match(feedbackText(hack, 1), /Rule broken: constructor\./, 'feedback');
});
