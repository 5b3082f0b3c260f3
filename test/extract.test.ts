import t from 'tap';
import { extractCode } from '../sandbox/extract.js';

t.test('the last fenced block wins when nothing is tagged', async (t) => {
  const reply = 'First try:\n```c\nint a;\n```\nBetter:\n```c\nvoid solve(void) {}\n```\nDone.';
  t.equal(extractCode(reply), 'void solve(void) {}\n');
});

t.test('an explicitly tagged block wins over later blocks', async (t) => {
  t.equal(
    extractCode('```c kernel\nvoid solve(void) { /* mine */ }\n```\nFor reference:\n```c\nint other;\n```'),
    'void solve(void) { /* mine */ }\n',
  );
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

t.test('the same choices as the old regular expressions on ordinary replies', async (t) => {
  t.equal(
    extractCode('<kernel>void solve(void) {}</kernel>'),
    'void solve(void) {}',
    'no newline is added where there was no trailing blank',
  );
  t.equal(extractCode('```c\nint a;   \n\n```'), 'int a;\n', 'trailing blanks become one newline');
  t.equal(extractCode('```c\nint a;\n```   \nafter'), 'int a;\n', 'a closing fence may have trailing blanks');
  t.equal(
    extractCode('```c `x`\nint a;\n```c\nint b;\n```'),
    'int b;\n',
    'a fence with a backtick in its info string is not a fence',
  );
  t.equal(extractCode('```c\r\nint a;\r\n```\r\n'), 'int a;\n', 'CRLF line ends');
  t.equal(extractCode('```solution\nint a;\n```\n```c\nint b;\n```'), 'int a;\n');
  t.equal(extractCode('text ```c\nint a;\n```'), null, 'a fence starts a line');
  t.equal(extractCode('```c'), null, 'an opening line needs a newline after it');
});

/** The old extraction, by regular expressions: right, but quadratic on crafted text. */
function byRegex(reply: string): string | null {
  const FENCE = /^(`{3,}|~{3,})[ \t]*([^\n`]*)\n([\s\S]*?)(?:^\1[ \t]*$|(?![\s\S]))/gm;
  const tagged = [...reply.matchAll(/<kernel>\n?([\s\S]*?)<\/kernel>/g)].map((m) => m[1]!);
  const blocks = [...reply.matchAll(FENCE)].map((m) => ({ info: m[2]!.trim().toLowerCase(), body: m[3]! }));
  const taggedFences = blocks.filter((b) => /\b(kernel|solution)\b/.test(b.info)).map((b) => b.body);
  const pick = (list: string[]) => (list.length ? list[list.length - 1]!.replace(/\s+$/, '\n') : null);
  const chosen = pick(tagged) ?? pick(taggedFences) ?? pick(blocks.map((b) => b.body));
  return chosen && chosen.trim() ? chosen : null;
}

t.test('the linear scan chooses exactly what the regular expressions chose (50,000 random replies)', async (t) => {
  const pieces = [
    '`',
    '```',
    '````',
    '~~~',
    '\n',
    '\r',
    '\u2028',
    ' ',
    '\t',
    'c',
    'kernel',
    'solution',
    '<kernel>',
    '</kernel>',
    'x',
  ];
  let rnd = 7;
  const rand = (n: number) => Math.floor(((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n);
  let differ = 0;
  for (let i = 0; i < 50_000; i++) {
    let reply = '';
    for (let j = rand(24); j > 0; j--) reply += pieces[rand(pieces.length)];
    if (extractCode(reply) !== byRegex(reply) && differ++ < 3) t.fail(`differs on ${JSON.stringify(reply)}`);
  }
  t.equal(differ, 0);
});

// The shapes that made the old regular expressions quadratic (seconds to
// minutes each at these sizes); read in one pass they finish at once. Their
// time is measured in bench/server-abuse.ts, not here.
t.test('crafted replies that were quadratic give the right answer', async (t) => {
  t.equal(extractCode('<kernel>'.repeat(65_000)), null, '"<kernel>" 65,000 times, never closed');
  t.equal(
    extractCode('```c\n'.repeat(100_000)),
    `${'```c\n'.repeat(99_999).trimEnd()}\n`,
    'opening lines only: the first block runs to the end',
  );
  t.equal(
    extractCode('```c\n' + ' '.repeat(500_000) + 'x\n```'),
    ' '.repeat(500_000) + 'x\n',
    'a long blank run before the end',
  );
  t.equal(
    extractCode(('`'.repeat(1000) + 'a\n').repeat(500)),
    `${('`'.repeat(1000) + 'a\n').repeat(499).trimEnd()}\n`,
    'long backtick fences never closed',
  );
  t.equal(extractCode('```c\n' + '/*'.repeat(131_072)), '/*'.repeat(131_072), 'unclosed /* in a fence');
});
