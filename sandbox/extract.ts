/** Finds the kernel in a model's reply: an explicitly tagged block first
 * (`<kernel>…</kernel>`, or a fence whose info string says `kernel` or
 * `solution`), else the last fenced code block. No code means no evaluation. */

const FENCE = /^(`{3,}|~{3,})[ \t]*([^\n`]*)\n([\s\S]*?)(?:^\1[ \t]*$|(?![\s\S]))/gm;

export function extractCode(reply: string): string | null {
  const tagged = [...reply.matchAll(/<kernel>\n?([\s\S]*?)<\/kernel>/g)].map((m) => m[1]!);
  const blocks: { info: string; body: string }[] = [];
  for (const m of reply.matchAll(FENCE)) blocks.push({ info: m[2]!.trim().toLowerCase(), body: m[3]! });
  const taggedFences = blocks.filter((b) => /\b(kernel|solution)\b/.test(b.info)).map((b) => b.body);
  const pick = (list: string[]) => (list.length ? list[list.length - 1]!.replace(/\s+$/, '\n') : null);
  const chosen = pick(tagged) ?? pick(taggedFences) ?? pick(blocks.map((b) => b.body));
  return chosen && chosen.trim() ? chosen : null;
}
