/** Static checks on a C candidate, on what is built rather than on what the
 * source looks like:
 *
 * - the files the preprocessor actually read (its own dependency output, not
 *   the source's #include lines) must all come from the allowed headers;
 * - the compiled object may hold no system-call instruction, no section the
 *   loader runs code from (.init_array, .ctors, .preinit_array, .fini_array,
 *   .init, .fini), no executable section outside .text, no executable stack and
 *   no IFUNC symbol;
 * - every symbol it references must be a math, memory or OpenMP function or one
 *   of the task's library ops, and it may define no name the runner or its
 *   libraries own.
 *
 * The checks on the source (checkSource, checkPreprocessed) run first, for
 * early and friendly messages; they see the source as the compiler's first
 * translation phases do (line splices, comments, digraphs), and refuse line
 * directives, so that the preprocessor's line markers can be trusted. Every
 * function here is linear in its input: they run on the server's event loop. */
import { ALLOWED_HEADERS } from '../contracts/c-headers.js';
import type { Flag, FlagKind } from './result.js';
import {
  PF_W,
  PF_X,
  PT_GNU_STACK,
  PT_LOAD,
  SHF_EXECINSTR,
  SHF_WRITE,
  SHT_FINI_ARRAY,
  SHT_INIT_ARRAY,
  SHT_PREINIT_ARRAY,
  STT_GNU_IFUNC,
  type ElfInfo,
} from './elf.js';

export const MAX_SOURCE_BYTES = 256 * 1024;

// prettier-ignore
const MATH = [
  'sin', 'cos', 'tan', 'asin', 'acos', 'atan', 'atan2', 'sinh', 'cosh', 'tanh', 'exp', 'exp2', 'expm1', 'log',
  'log2', 'log10', 'log1p', 'sqrt', 'cbrt', 'pow', 'fabs', 'floor', 'ceil', 'round', 'lround', 'trunc', 'fmod',
  'fmin', 'fmax', 'fma', 'erf', 'erfc', 'hypot', 'ldexp', 'frexp', 'nearbyint', 'rint', 'lrint', 'copysign',
];
// prettier-ignore
const LIBC = [
  'malloc', 'calloc', 'realloc', 'free', 'aligned_alloc', 'posix_memalign', 'memcpy', 'memmove', 'memset',
  'memcmp', 'abort', 'exit', 'abs', 'labs', 'qsort', 'printf', 'puts', 'putchar', 'fprintf', 'fputs', 'fputc',
  'fwrite', 'stdout', 'stderr', '__stack_chk_fail', '__assert_fail', '__printf_chk', '__fprintf_chk',
  '__memcpy_chk', '__memset_chk', '__memmove_chk',
  // The linker's own: referenced whenever position-independent code takes a function's address.
  '_GLOBAL_OFFSET_TABLE_',
];
/** Undefined symbols a candidate object may reference, besides the task's library ops. */
export const ALLOWED_SYMBOLS: ReadonlySet<string> = new Set([
  ...MATH.flatMap((f) => [f, `${f}f`, `__${f}_finite`, `__${f}f_finite`]),
  ...LIBC,
]);
const ALLOWED_PREFIXES = ['omp_', 'GOMP_', '_ZGV' /* libmvec vector math */];

/** Attributes that place code or data where the loader runs it, or that make
 * symbols or sections behind the compiler's back, in either spelling
 * (`__attribute__((…))` or `[[gnu::…]]`). */
const FORBIDDEN_ATTRIBUTES = new Set([
  'constructor',
  'destructor',
  'section',
  'ifunc',
  'alias',
  'weakref',
  'symver',
  'target_clones',
  'naked',
  'used',
  'retain',
]);

export interface StaticFinding {
  outcome: 'static_violation' | 'compile_error';
  message: string;
  flags: Flag[];
}

function violation(kind: FlagKind, message: string): StaticFinding {
  return { outcome: 'static_violation', message, flags: [{ kind, evidence: message }] };
}

/** Runs a check on what the candidate wrote; one that throws refuses the candidate. As an
 * env_error the turn would be masked and not counted: a way out of any counted failure that a
 * policy can learn (an unterminated literal once crashed checkSource). The error is logged. */
export function failClosed(what: string, check: () => StaticFinding | null): StaticFinding | null {
  try {
    return check();
  } catch (e) {
    console.error(`anvil: the ${what} check failed on a candidate; it is refused:`, e);
    return violation('check_failed', `the ${what} could not be checked, so it is refused`);
  }
}

/* ---------- the source, as the compiler's first phases see it ---------- */

interface LogicalLine {
  /** Code with comments as spaces and literals as "" (directive lines keep their literals). */
  text: string;
  directive: boolean;
}

/** Translation phases 2 and 3 in one linear pass: line splices joined, comments
 * replaced by a space, string and character literals blanked. Raw string
 * literals (a GNU extension in which splices do not apply) are reported rather
 * than lexed. */
export function logicalLines(code: string): { lines: LogicalLine[]; rawString: boolean } {
  const src = code.replace(/\\\r?\n/g, '');
  const lines: LogicalLine[] = [];
  let cur: string[] = [];
  let blank = true; // nothing but white space (and comments) on the line so far
  let directive = false;
  let rawString = false;
  const push = (chunk: string) => {
    if (blank && /\S/.test(chunk)) {
      directive = /^\s*(#|%:)/.test(chunk);
      blank = false;
    }
    cur.push(chunk);
  };
  const endLine = () => {
    lines.push({ text: cur.join(''), directive });
    cur = [];
    blank = true;
    directive = false;
  };
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i]!;
    if (c === '\n') {
      endLine();
      i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      push(' ');
      i = end < 0 ? n : end + 2;
    } else if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? n : end;
    } else if (c === '"' || c === "'") {
      if (c === '"' && /(?:^|[^A-Za-z0-9_])(?:R|LR|uR|UR|u8R)$/.test(src.slice(Math.max(0, i - 4), i)))
        rawString = true;
      let j = i + 1;
      while (j < n && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      // An unterminated literal ends at the line's end; the newline stays out of the directive's text.
      const end = j < n && src[j] === c ? j + 1 : j;
      push(directive ? src.slice(i, end) : c === '"' ? '""' : "''");
      i = j < n && src[j] === c ? j + 1 : Math.min(j, n);
    } else {
      let j = i + 1;
      while (j < n && src[j] !== '\n' && src[j] !== '/' && src[j] !== '"' && src[j] !== "'") j++;
      push(src.slice(i, j));
      i = j;
    }
  }
  if (cur.length) endLine();
  return { lines, rawString };
}

const ASM = /\b(asm|__asm__|__asm)\b/;

/** Names inside every __attribute__((…)) of a text, in one pass. */
function attributeNames(text: string): string[] {
  const names: string[] = [];
  const re = /\b__attribute(?:__)?\b/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    let i = m.index + m[0].length,
      depth = 0;
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '(') depth++;
      else if (ch === ')') {
        if (--depth <= 0) break;
      } else if (depth >= 2 && /[A-Za-z_]/.test(ch) && !/[A-Za-z0-9_]/.test(text[i - 1] ?? ' ')) {
        let j = i;
        while (j < text.length && /[A-Za-z0-9_]/.test(text[j]!)) j++;
        names.push(text.slice(i, j).replace(/^__(.*)__$/, '$1'));
        i = j - 1;
      } else if (depth === 0 && !/\s/.test(ch)) break;
    }
    re.lastIndex = Math.max(re.lastIndex, i);
  }
  return names;
}

/** Names of every standard attribute ([[gnu::section(…)]], <:<:__gnu__::constructor:>:>) of
 * a text, in one pass: gcc accepts them in gnu11 too, with the same meaning as __attribute__'s.
 * A name followed by `::` is a namespace; what sits inside parentheses is an argument. */
function bracketAttributeNames(text: string): string[] {
  const names: string[] = [];
  const re = /(?:\[|<:)\s*(?:\[|<:)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    let i = m.index + m[0].length,
      depth = 0;
    for (; i < text.length; i++) {
      const ch = text[i]!;
      if (ch === '(') depth++;
      else if (ch === ')') depth--;
      else if (depth <= 0 && (ch === ']' || (ch === ':' && text[i + 1] === '>'))) break;
      else if (depth === 0 && /[A-Za-z_]/.test(ch) && !/[A-Za-z0-9_]/.test(text[i - 1] ?? ' ')) {
        let j = i;
        while (j < text.length && /[A-Za-z0-9_]/.test(text[j]!)) j++;
        if (!/^\s*::/.test(text.slice(j, j + 8))) names.push(text.slice(i, j).replace(/^__(.*)__$/, '$1'));
        i = j - 1;
      }
    }
    re.lastIndex = Math.max(re.lastIndex, i);
  }
  return names;
}

function checkAttributes(text: string, where: string): StaticFinding | null {
  const bad = [...attributeNames(text), ...bracketAttributeNames(text)].find((a) => FORBIDDEN_ATTRIBUTES.has(a));
  if (!bad) return null;
  const why =
    bad === 'constructor' || bad === 'destructor'
      ? 'runs outside the timed call'
      : 'places code or symbols behind the compiler';
  return violation(
    bad === 'constructor' || bad === 'destructor' ? 'constructor' : 'forbidden_attribute',
    `the attribute \`${bad}\`${where} ${why} and is not allowed`,
  );
}

/** Source-level checks; returns the first finding, or null. */
export function checkSource(code: string): StaticFinding | null {
  if (Buffer.byteLength(code) > MAX_SOURCE_BYTES)
    return violation(
      'code_too_large',
      `the code is ${Buffer.byteLength(code)} bytes; the limit is ${MAX_SOURCE_BYTES}`,
    );
  const { lines, rawString } = logicalLines(code);
  if (rawString) return violation('raw_string', 'raw string literals (R"(…)") are not allowed');
  for (const line of lines) {
    if (!line.directive) continue;
    const d = /^[ \t\f\v]*(?:#|%:)[ \t\f\v]*([A-Za-z_]\w*|\d)?([\s\S]*)$/.exec(line.text)!;
    const name = d[1] ?? '';
    if (name === 'line' || /^\d$/.test(name))
      return violation(
        'line_directive',
        'line directives (`#line`, `# N "file"`) are not allowed: they relabel where code comes from',
      );
    if (['include', 'include_next', 'import', 'embed'].includes(name)) {
      const target = d[2]!.trim();
      const sys = /^<([\w./]+)>$/.exec(target);
      if (
        name !== 'include' ||
        (!(sys && (ALLOWED_HEADERS as readonly string[]).includes(sys[1]!)) && target !== '"anvil_lib.h"')
      )
        return violation(
          'forbidden_include',
          `\`#${name} ${target}\` is not allowed; allowed headers: ${ALLOWED_HEADERS.join(', ')}, "anvil_lib.h"`,
        );
    }
  }
  const body = lines.map((l) => l.text).join('\n');
  const asm = ASM.exec(body);
  if (asm) return violation('inline_assembly', `inline assembly (\`${asm[1]}\`) is not allowed`);
  const attr = checkAttributes(body, '');
  if (attr) return attr;
  if (!/\bsolve\s*\(/.test(body))
    return { outcome: 'compile_error', message: 'the code defines no function `solve`', flags: [] };
  return null;
}

/** Checks the preprocessed source (`gcc -E`): its line markers must be the
 * preprocessor's own (a marker that jumps to another file without entering or
 * leaving one was forged), and the lines that came from the candidate's file
 * may hold no assembly or forbidden attribute that macros produced. */
export function checkPreprocessed(preprocessed: string, fileName: string): StaticFinding | null {
  const isOwn = (f: string) => f === fileName || f.endsWith(`/${fileName}`);
  const pseudo = (f: string) => f.startsWith('<');
  let current = '';
  let own = false;
  let start = 0;
  while (start < preprocessed.length) {
    let end = preprocessed.indexOf('\n', start);
    if (end < 0) end = preprocessed.length;
    const line = preprocessed.slice(start, end);
    start = end + 1;
    if (line.startsWith('# ')) {
      const marker = /^# (\d+) "((?:[^"\\]|\\.)*)"((?: \d)*)$/.exec(line);
      if (!marker) continue;
      const file = marker[2]!;
      const flags = marker[3]!.trim().split(' ');
      // Without flag 1 (entering a file) or 2 (returning to one), a marker only moves within the current file.
      if (
        !flags.includes('1') &&
        !flags.includes('2') &&
        current &&
        file !== current &&
        !pseudo(file) &&
        !pseudo(current)
      )
        return violation('line_directive', `a line marker relabels the code of "${current}" as "${file}"`);
      current = file;
      own = isOwn(file);
      continue;
    }
    if (!own) continue;
    const asm = ASM.exec(line);
    if (asm) return violation('inline_assembly', `inline assembly (\`${asm[1]}\`, produced by a macro) is not allowed`);
    const attr = checkAttributes(line, ', produced by a macro,');
    if (attr) return attr;
  }
  return null;
}

/** Parses a make-style dependency file (`gcc -MD`): every file the preprocessor read. */
export function parseDependencies(deps: string): string[] {
  const body = deps.replace(/\\\r?\n/g, ' ');
  const colon = body.search(/:(\s|$)/);
  const files: string[] = [];
  let cur = '';
  for (let i = colon + 1; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && body[i + 1] === ' ') {
      cur += ' ';
      i++;
    } else if (c === '$' && body[i + 1] === '$') {
      cur += '$';
      i++;
    } else if (/\s/.test(c)) {
      if (cur) files.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur) files.push(cur);
  return files;
}

/** Every file the preprocessor read must be the candidate's own file, one of
 * the harness's headers, or a header that the allowed headers themselves read. */
export function checkDependencies(
  files: readonly string[],
  allowed: ReadonlySet<string>,
  ownFile: string,
): StaticFinding | null {
  for (const f of files) {
    if (f === ownFile || allowed.has(f)) continue;
    return violation(
      'forbidden_include',
      `the code reads \`${f}\` at compile time; allowed headers: ${ALLOWED_HEADERS.join(', ')}, "anvil_lib.h"`,
    );
  }
  return null;
}

const LOADER_SECTIONS = /^\.(init_array|fini_array|preinit_array|ctors|dtors|init|fini)(\.|$)/;

/** Checks the compiled object: its sections and symbols (from the ELF file) and
 * its instructions (`objdump -d` of every executable section). */
export function checkObject(elf: ElfInfo, disassembly: string): StaticFinding | null {
  let stackNote = false;
  for (const s of elf.sections) {
    if (
      LOADER_SECTIONS.test(s.name) ||
      s.type === SHT_INIT_ARRAY ||
      s.type === SHT_FINI_ARRAY ||
      s.type === SHT_PREINIT_ARRAY
    )
      return violation(
        'init_section',
        `the object has a section \`${s.name}\` from which the loader runs code before the first call (or after the last)`,
      );
    if (s.name === '.note.GNU-stack') {
      if (s.flags & SHF_EXECINSTR) return violation('executable_stack', 'the object asks for an executable stack');
      stackNote = true;
    }
    if (s.flags & SHF_EXECINSTR) {
      if (s.flags & SHF_WRITE)
        return violation('executable_section', `the section \`${s.name}\` is both writable and executable`);
      if (s.name !== '.text' && !s.name.startsWith('.text.'))
        return violation('executable_section', `the executable section \`${s.name}\` is not one the compiler makes`);
    }
  }
  if (!stackNote) return violation('executable_stack', 'the object does not say that its stack is not executable');
  const ifunc = elf.symbols.find((s) => s.type === STT_GNU_IFUNC);
  if (ifunc)
    return violation('ifunc', `the symbol \`${ifunc.name}\` is an IFUNC, whose resolver runs while the program loads`);
  let start = 0;
  while (start < disassembly.length) {
    let end = disassembly.indexOf('\n', start);
    if (end < 0) end = disassembly.length;
    const line = disassembly.slice(start, end);
    start = end + 1;
    const insn = /^\s*[0-9a-f]+:\t(.*)$/.exec(line)?.[1];
    if (!insn) continue;
    const words = insn.trim().split(/\s+/);
    const hit = words.find((w) => w === 'syscall' || w === 'sysenter' || w === 'int');
    if (hit) return violation('syscall_instruction', `the object holds a system-call instruction (\`${insn.trim()}\`)`);
  }
  return null;
}

/** Checks the linked runner: no segment both writable and executable, no executable stack. */
export function checkExecutable(elf: ElfInfo): StaticFinding | null {
  for (const p of elf.segments) {
    if (p.type === PT_GNU_STACK && p.flags & PF_X)
      return violation('executable_stack', 'the linked program has an executable stack');
    if (p.type === PT_LOAD && p.flags & PF_X && p.flags & PF_W)
      return violation('executable_section', 'the linked program has a segment both writable and executable');
  }
  return null;
}

/** Checks the `nm -P` listing of the candidate's object file. `libraryNames`
 * are the names libc, libm and libgomp define: defining one would interpose it
 * for the runner itself. */
export function checkSymbols(
  nmOutput: string,
  libOps: readonly string[],
  libraryNames: ReadonlySet<string> = new Set(),
): StaticFinding | null {
  const allowedLib = new Set(libOps);
  const entries = nmOutput
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([name, type]) => name && type) as [string, string][];
  let definesSolve = false;
  // Definitions first: a name the runner or its libraries own is the worse finding.
  for (const [name, type] of entries) {
    if (type === 'i')
      return violation('ifunc', `the symbol \`${name}\` is an IFUNC, whose resolver runs while the program loads`);
    if (!/^[A-Z]$/.test(type) || type === 'U') continue;
    if (name === 'solve' && type === 'T') definesSolve = true;
    else if (name === 'main' || name.startsWith('_') || /^(anvil|lib)_/.test(name) || libraryNames.has(name))
      return violation(
        'reserved_symbol',
        `the code defines \`${name}\`, a name the harness or its libraries own (make it \`static\` or rename it)`,
      );
  }
  for (const [name, type] of entries) {
    if (type !== 'U' && type !== 'w' && type !== 'v') continue;
    if (ALLOWED_SYMBOLS.has(name) || allowedLib.has(name) || ALLOWED_PREFIXES.some((p) => name.startsWith(p))) continue;
    const hint = name.startsWith('lib_') ? ' (this task does not offer it)' : '';
    return violation(
      'forbidden_call',
      `the code calls \`${name}\`${hint}; candidates may call only math, memory and OpenMP functions and the task's library ops`,
    );
  }
  if (!definesSolve)
    return { outcome: 'compile_error', message: 'the code defines no global function `solve`', flags: [] };
  return null;
}
