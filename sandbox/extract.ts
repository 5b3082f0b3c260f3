/** Finds the kernel in a model's reply: an explicitly tagged block first
 * (`<kernel>…</kernel>`, or a fence whose info string says `kernel` or
 * `solution`), else the last fenced code block. No code means no evaluation.
 *
 * The reply is the adversary's text, so every scan here is linear in its
 * length: one pass of indexOf for the tags, one pass over lines for the
 * fences, no regex that can backtrack over the reply. */

const KERNEL_OPEN = '<kernel>';
const KERNEL_CLOSE = '</kernel>';

/** Bodies of `<kernel>…</kernel>`, in order; each closes at the first `</kernel>` after it. */
function taggedBlocks(reply: string): string[] {
  const out: string[] = [];
  let pos = 0;
  for (;;) {
    const open = reply.indexOf(KERNEL_OPEN, pos);
    if (open < 0) break;
    let start = open + KERNEL_OPEN.length;
    if (reply[start] === '\n') start++;
    const close = reply.indexOf(KERNEL_CLOSE, start);
    // No closing tag after this one means none after any later one either.
    if (close < 0) break;
    out.push(reply.slice(start, close));
    pos = close + KERNEL_CLOSE.length;
  }
  return out;
}

/** Line terminators, as `^` and `$` of a multiline regular expression see them. */
const isLineEnd = (ch: string | undefined) => ch === '\n' || ch === '\r' || ch === '\u2028' || ch === '\u2029';

/** The first line start after `from`, or -1. */
function nextLineStart(s: string, from: number): number {
  for (let i = from; i < s.length; i++) if (isLineEnd(s[i])) return i + 1;
  return -1;
}

/** A fence opening at line start `p`: three or more backticks or tildes, an info
 * string without a backtick, and a newline. Returns the fence, its info and where the body starts. */
function opening(s: string, p: number): { fence: string; info: string; bodyStart: number } | null {
  const c = s[p];
  if (c !== '`' && c !== '~') return null;
  let n = p;
  while (s[n] === c) n++;
  if (n - p < 3) return null;
  const nl = s.indexOf('\n', n);
  if (nl < 0) return null;
  const info = s.slice(n, nl);
  if (info.includes('`')) return null;
  return { fence: s.slice(p, n), info: info.trim().toLowerCase(), bodyStart: nl + 1 };
}

/** Where a closing line at line start `q` ends (the same fence exactly, then
 * blanks, then a line end), or -1 when it is not one. */
function closingEnd(s: string, q: number, fence: string): number {
  if (!s.startsWith(fence, q)) return -1;
  let i = q + fence.length;
  while (s[i] === ' ' || s[i] === '\t') i++;
  return i === s.length || isLineEnd(s[i]) ? i : -1;
}

/** Fenced blocks, in order; an unterminated last one runs to the end of the reply.
 * The same blocks as the multiline expression
 * /^(`{3,}|~{3,})[ \t]*([^\n`]*)\n([\s\S]*?)(?:^\1[ \t]*$|(?![\s\S]))/gm, found in one pass. */
function fencedBlocks(reply: string): Array<{ info: string; body: string }> {
  const out: Array<{ info: string; body: string }> = [];
  let p = 0;
  while (p >= 0 && p <= reply.length) {
    const o = opening(reply, p);
    if (!o) {
      p = nextLineStart(reply, p);
      continue;
    }
    let q = o.bodyStart;
    let end = -1;
    while (q >= 0 && q <= reply.length) {
      end = closingEnd(reply, q, o.fence);
      if (end >= 0) break;
      q = nextLineStart(reply, q);
    }
    if (end < 0) {
      out.push({ info: o.info, body: reply.slice(o.bodyStart) });
      break;
    }
    out.push({ info: o.info, body: reply.slice(o.bodyStart, q) });
    p = nextLineStart(reply, end);
  }
  return out;
}

/** Trailing whitespace becomes one newline (a linear trimEnd, not a backtracking /\s+$/). */
function endWithNewline(code: string): string {
  const trimmed = code.trimEnd();
  return trimmed.length === code.length ? code : `${trimmed}\n`;
}

export function extractCode(reply: string): string | null {
  const blocks = fencedBlocks(reply);
  const pick = (list: string[]) => (list.length ? endWithNewline(list[list.length - 1]!) : null);
  // A word test on one info string: linear, no nested quantifier.
  const tagged = blocks.filter((b) => /\b(kernel|solution)\b/.test(b.info)).map((b) => b.body);
  const chosen = pick(taggedBlocks(reply)) ?? pick(tagged) ?? pick(blocks.map((b) => b.body));
  return chosen && chosen.trim() ? chosen : null;
}
