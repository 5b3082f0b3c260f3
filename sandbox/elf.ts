/** A reader for the parts of an x86-64 ELF file that the object checks need:
 * section headers, the symbol table and program headers. It reads untrusted
 * bytes, so every offset is bounds-checked; a malformed file is an error. */

export interface ElfSection {
  name: string;
  type: number;
  flags: bigint;
}

export interface ElfSymbol {
  name: string;
  /** STT_*: 10 is STT_GNU_IFUNC. */
  type: number;
  bind: number;
}

export interface ElfSegment {
  type: number;
  /** PF_X 1, PF_W 2, PF_R 4. */
  flags: number;
}

export interface ElfInfo {
  sections: ElfSection[];
  symbols: ElfSymbol[];
  segments: ElfSegment[];
}

export const SHT_SYMTAB = 2;
export const SHT_INIT_ARRAY = 14;
export const SHT_FINI_ARRAY = 15;
export const SHT_PREINIT_ARRAY = 16;
export const SHF_WRITE = 0x1n;
export const SHF_EXECINSTR = 0x4n;
export const STT_GNU_IFUNC = 10;
export const PT_LOAD = 1;
export const PT_GNU_STACK = 0x6474e551;
export const PF_X = 1;
export const PF_W = 2;

export class ElfError extends Error {}

type SectionHeader = {
  name: number;
  type: number;
  flags: bigint;
  off: number;
  size: number;
  link: number;
  entsize: number;
};
type StringTable = { off: number; size: number };

export function readElf(buf: Buffer): ElfInfo {
  const elf = new Reader(buf);
  elf.need(0, 64);
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1)
    throw new ElfError('not a little-endian ELF64 file');
  const segments = elf.segments();
  const raw = elf.sectionHeaders();
  const shstr = raw.length ? elf.table(raw, buf.readUInt16LE(0x3e)) : { off: 0, size: 0 };
  const sections = raw.map((s) => ({ name: raw.length ? elf.str(shstr, s.name) : '', type: s.type, flags: s.flags }));
  return { sections, symbols: elf.symbols(raw), segments };
}

/** Bounds-checked reads of one ELF64 file: every offset the file gives is checked before use. */
class Reader {
  constructor(private readonly buf: Buffer) {}

  need(off: number, len: number): void {
    if (!Number.isSafeInteger(off) || off < 0 || off + len > this.buf.length)
      throw new ElfError(`offset ${off} is outside the file`);
  }

  u64(off: number): number {
    this.need(off, 8);
    return Number(this.buf.readBigUInt64LE(off));
  }

  str(tab: StringTable, at: number): string {
    if (at >= tab.size) throw new ElfError('a name is outside its string table');
    const start = tab.off + at;
    let end = start;
    while (end < tab.off + tab.size && this.buf[end] !== 0) end++;
    return this.buf.toString('latin1', start, end);
  }

  segments(): ElfSegment[] {
    const buf = this.buf;
    const phoff = this.u64(0x20),
      phentsize = buf.readUInt16LE(0x36),
      phnum = buf.readUInt16LE(0x38);
    const segments: ElfSegment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = phoff + i * phentsize;
      this.need(at, 8);
      segments.push({ type: buf.readUInt32LE(at), flags: buf.readUInt32LE(at + 4) });
    }
    return segments;
  }

  sectionHeaders(): SectionHeader[] {
    const buf = this.buf;
    const shoff = this.u64(0x28),
      shentsize = buf.readUInt16LE(0x3a),
      shnum = buf.readUInt16LE(0x3c);
    const raw: SectionHeader[] = [];
    for (let i = 0; i < shnum; i++) {
      const at = shoff + i * shentsize;
      this.need(at, 64);
      raw.push({
        name: buf.readUInt32LE(at),
        type: buf.readUInt32LE(at + 4),
        flags: buf.readBigUInt64LE(at + 8),
        off: this.u64(at + 24),
        size: this.u64(at + 32),
        link: buf.readUInt32LE(at + 40),
        entsize: this.u64(at + 56),
      });
    }
    return raw;
  }

  /** Section `i`, its bytes checked to lie in the file. */
  table(raw: SectionHeader[], i: number): SectionHeader {
    const s = raw[i];
    if (!s) throw new ElfError(`no section ${i}`);
    if (s.type !== 8) this.need(s.off, s.size); // SHT_NOBITS has no bytes in the file
    return s;
  }

  symbols(raw: SectionHeader[]): ElfSymbol[] {
    const symbols: ElfSymbol[] = [];
    for (const [index, s] of raw.entries()) {
      if (s.type !== SHT_SYMTAB) continue;
      this.table(raw, index);
      const strtab = this.table(raw, s.link);
      const ent = s.entsize || 24;
      for (let at = s.off + ent; at + 24 <= s.off + s.size; at += ent) {
        const info = this.buf[at + 4]!;
        symbols.push({ name: this.str(strtab, this.buf.readUInt32LE(at)), type: info & 0xf, bind: info >> 4 });
      }
    }
    return symbols;
  }
}
