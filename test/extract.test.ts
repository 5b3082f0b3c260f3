import t from 'tap';
import { extractCode } from '../sandbox/extract.js';

t.test('the last fenced block wins when nothing is tagged', async (t) => {
  const reply = 'First try:\n```c\nint a;\n```\nBetter:\n```c\nvoid solve(void) {}\n```\nDone.';
  t.equal(extractCode(reply), 'void solve(void) {}\n');
});

t.test('an explicitly tagged block wins over later blocks', async (t) => {
  t.equal(extractCode('```c kernel\nvoid solve(void) { /* mine */ }\n```\nFor reference:\n```c\nint other;\n```'), 'void solve(void) { /* mine */ }\n');
  t.equal(extractCode('<kernel>\nvoid solve(void) {}\n</kernel>\n```c\nint x;\n```'), 'void solve(void) {}\n');
});

t.test('tildes, longer fences and an unterminated last block are read', async (t) => {
  t.equal(extractCode('~~~c\nint a;\n~~~'), 'int a;\n');
  t.equal(extractCode('````c\n```\nint a;\n````'), '```\nint a;\n');
  t.equal(extractCode('Here:\n```c\nvoid solve(void) {}\n'), 'void solve(void) {}\n');
});

t.test('no code block, or an empty one, is no code', async (t) => {
  t.equal(extractCode('I cannot do this task.'), null);
  t.equal(extractCode('```c\n\n```'), null);
});
