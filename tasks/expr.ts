/** Integer arithmetic over a task's shape parameters: sizes, FLOP and byte
 * counts are written as expressions like `(H-k+1)*(W-k+1)`. A tiny parser,
 * so task files never reach `eval`. */
import { AnvilError } from '../contracts/errors.js';

type Token = { kind: 'num'; value: number } | { kind: 'name'; value: string } | { kind: 'op'; value: string };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([A-Za-z_]\w*)|([-+*/()]))/gy;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < src.length) {
    re.lastIndex = pos;
    m = re.exec(src);
    if (!m || m[0].length === 0) {
      if (/^\s*$/.test(src.slice(pos))) break;
      throw new AnvilError('invalid_task', `cannot parse expression "${src}" at ${pos}`);
    }
    pos = re.lastIndex;
    if (m[1] !== undefined) tokens.push({ kind: 'num', value: Number(m[1]) });
    else if (m[2] !== undefined) tokens.push({ kind: 'name', value: m[2] });
    else tokens.push({ kind: 'op', value: m[3]! });
  }
  return tokens;
}

/** Evaluates `src` with the given variables; throws on unknown names. */
export function evaluate(src: string, vars: Record<string, number>): number {
  const tokens = tokenize(src);
  let i = 0;
  const peek = () => tokens[i];
  const fail = (what: string): never => {
    throw new AnvilError('invalid_task', `expression "${src}": ${what}`);
  };
  const primary = (): number => {
    const t = tokens[i++];
    if (!t) return fail('unexpected end');
    if (t.kind === 'num') return t.value;
    if (t.kind === 'name') {
      if (!(t.value in vars)) fail(`unknown name ${t.value}`);
      return vars[t.value]!;
    }
    if (t.value === '(') {
      const v = sum();
      if (peek()?.value !== ')') fail('missing )');
      i++;
      return v;
    }
    if (t.value === '-') return -primary();
    return fail(`unexpected ${t.value}`);
  };
  const product = (): number => {
    let v = primary();
    while (peek()?.kind === 'op' && (peek()!.value === '*' || peek()!.value === '/')) {
      const op = tokens[i++]!.value;
      const r = primary();
      v = op === '*' ? v * r : Math.floor(v / r);
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (peek()?.kind === 'op' && (peek()!.value === '+' || peek()!.value === '-')) {
      const op = tokens[i++]!.value;
      const r = product();
      v = op === '+' ? v + r : v - r;
    }
    return v;
  };
  const v = sum();
  if (i !== tokens.length) fail('trailing input');
  return v;
}
