#!/usr/bin/env node
// Runs the tap suite over the compiled tests, keeps the raw TAP in
// test-results.tap, prints each file's result and every failure, and ends with
// the line CI counts: "N passed, N failed".
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';

const given = process.argv.slice(2);
const files = given.length
  ? given
  : readdirSync('dist/test')
      .filter((f) => f.endsWith('.test.js'))
      .map((f) => `dist/test/${f}`);
const raw = createWriteStream('test-results.tap');

let passed = 0;
let failed = 0;
let skipped = 0;

/** Runs tap over `list`; calls back with the files that failed without one failing test in them
 * (the runtime itself died while loading them) and whether anything else made tap fail. */
function runTap(list, done) {
  const args = ['tap', '--reporter=tap', '--allow-incomplete-coverage', '--coverage-report=text-summary', ...list];
  const child = spawn('npx', args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FORCE_COLOR: '0' } });
  let buffer = '';
  /** Lines of the test in progress: shown, in short, only if it fails. */
  let current = [];
  let failedInFile = 0;
  const crashed = [];
  const failedBefore = failed;

  function onLine(line) {
    raw.write(`${line}\n`);
    // Level 0: one point per test file. Level 1: one point per test (t.test).
    const file = /^(not )?ok \d+ - (\S+)/.exec(line);
    if (file) {
      console.log(`${file[1] ? 'FAIL' : 'ok  '} ${file[2]}`);
      if (file[1] && failedInFile === 0) crashed.push(file[2]);
      failedInFile = 0;
      return;
    }
    const test = /^ {4}(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\S*.*| # time=.*)?$/.exec(line);
    if (test) {
      if (test[3]) skipped++;
      else if (test[1]) {
        failed++;
        failedInFile++;
        console.log(`  not ok: ${test[2]}`);
        for (const l of current.filter((l) => /^ {8}not ok|^ {10}(found|wanted|compare|message):/.test(l)).slice(0, 40))
          console.log(`    ${l.trim()}`);
      } else passed++;
      current = [];
      return;
    }
    if (/^ {8}/.test(line)) current.push(line);
    if (/^(Statements|Branches|Functions|Lines)\b/.test(line) || /^# \{ total/.test(line)) console.log(line);
  }

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      onLine(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
    }
  });
  child.on('close', (code) => {
    if (buffer) onLine(buffer);
    // A crash outside any test still fails the run, unless it is a file's own crash (retried below).
    done(crashed, code !== 0 && failed === failedBefore && crashed.length === 0);
  });
}

runTap(files, (crashed, otherFailure) => {
  if (otherFailure) failed++;
  if (!crashed.length) return next();
  // Node 20 can die inside its module loader (a require(esm) race: "FATAL ERROR:
  // v8::Module::IsGraphAsync") before a file's first test. Such a file runs once more, alone;
  // failing again, it counts as failed.
  console.log(`rerunning after a crash before any test ran: ${crashed.join(', ')}`);
  runTap(crashed, (again) => {
    failed += again.length;
    next();
  });
});

function next() {
  raw.end();
  if (!given.length)
    runPython('/usr/bin/python3', 'clients/python/tests', () =>
      runPython(TRAINER_PYTHON, 'clients/python/trainer_tests', finish),
    );
  else finish();
}

/** The trainers' virtual environment (TRL, transformers, torch, datasets, Gymnasium), made by
 * `scripts/setup.sh --test`; its tests fail, never skip, when it could not be made. */
const TRAINER_PYTHON = '.venv-trainers/bin/python';

/** Python tests against a real server: the client's with Debian's interpreter, the trainers' in their venv. */
function runPython(python, dir, then) {
  if (!existsSync(python) || (!existsSync('.venv-trainers/.anvil-ok') && python === TRAINER_PYTHON)) {
    console.log(
      `FAIL python ${dir}: ${python} is missing or incomplete; run bash scripts/setup.sh --test (see .venv-trainers-install.log)`,
    );
    failed++;
    return then();
  }
  const py = spawn(python, ['-m', 'unittest', 'discover', '-s', dir, '-v'], {
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, TRL_EXPERIMENTAL_SILENCE: '1' },
  });
  let err = '';
  py.stderr.setEncoding('utf8');
  py.stderr.on('data', (d) => (err += d));
  py.on('close', (code) => {
    for (const m of err.matchAll(
      /^(\w+) \(([\w.]+)\)(?: \.\.\.|\n[^\n]*\.\.\.)[\s\S]*?\b(ok|FAIL|ERROR|skipped)\b/gm,
    )) {
      console.log(`${m[3] === 'ok' ? 'ok  ' : 'FAIL'} python ${m[2]}${m[3] === 'skipped' ? ' (skipped)' : ''}`);
    }
    const total = Number(/^Ran (\d+) tests?/m.exec(err)?.[1] ?? 0);
    const bad = /FAILED \(([^)]*)\)/.exec(err)?.[1] ?? '';
    const count = (k) => Number(new RegExp(`${k}=(\\d+)`).exec(bad)?.[1] ?? 0);
    const pyFailed = count('failures') + count('errors');
    const pySkipped = count('skipped') + Number(/OK \(skipped=(\d+)\)/.exec(err)?.[1] ?? 0);
    if (code !== 0 || total === 0) {
      process.stdout.write(err.slice(-4000));
      if (pyFailed === 0) failed++;
    }
    failed += pyFailed;
    skipped += pySkipped;
    passed += total - pyFailed - pySkipped;
    then();
  });
}

function finish() {
  console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exitCode = failed ? 1 : 0;
}
