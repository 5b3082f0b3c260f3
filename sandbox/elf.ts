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

export function readElf(buf: Buffer): ElfInfo {
  const need = (off: number, len: number) => {
    if (!Number.isSafeInteger(off) || off < 0 || off + len > buf.length) throw new ElfError(`offset ${off} is outside the file`);
  };
  need(0, 64);
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) throw new ElfError('not a little-endian ELF64 file');
  const u64 = (off: number) => {
    need(off, 8);
    return Number(buf.readBigUInt64LE(off));
  };
  const str = (tab: { off: number; size: number }, at: number) => {
    if (at >= tab.size) throw new ElfError('a name is outside its string table');
    const start = tab.off + at;
    let end = start;
    while (end < tab.off + tab.size && buf[end] !== 0) end++;
    return buf.toString('latin1', start, end);
  };

  const phoff = u64(0x20), phentsize = buf.readUInt16LE(0x36), phnum = buf.readUInt16LE(0x38);
  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    need(at, 8);
    segments.push({ type: buf.readUInt32LE(at), flags: buf.readUInt32LE(at + 4) });
  }

  const shoff = u64(0x28), shentsize = buf.readUInt16LE(0x3a), shnum = buf.readUInt16LE(0x3c), shstrndx = buf.readUInt16LE(0x3e);
  const raw: Array<{ name: number; type: number; flags: bigint; off: number; size: number; link: number; entsize: number }> = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    need(at, 64);
    raw.push({
      name: buf.readUInt32LE(at),
      type: buf.readUInt32LE(at + 4),
      flags: buf.readBigUInt64LE(at + 8),
      off: u64(at + 24),
      size: u64(at + 32),
      link: buf.readUInt32LE(at + 40),
      entsize: u64(at + 56),
    });
  }
  const table = (i: number) => {
    const s = raw[i];
    if (!s) throw new ElfError(`no section ${i}`);
    if (s.type !== 8) need(s.off, s.size); // SHT_NOBITS has no bytes in the file
    return s;
  };
  const shstr = shnum ? table(shstrndx) : { off: 0, size: 0 };
  const sections = raw.map((s) => ({ name: shnum ? str(shstr, s.name) : '', type: s.type, flags: s.flags }));

  const symbols: ElfSymbol[] = [];
  for (const [index, s] of raw.entries()) {
    if (s.type !== SHT_SYMTAB) continue;
    table(index);
    const strtab = table(s.link);
    const ent = s.entsize || 24;
    for (let at = s.off + ent; at + 24 <= s.off + s.size; at += ent) {
      const info = buf[at + 4]!;
      symbols.push({ name: str(strtab, buf.readUInt32LE(at)), type: info & 0xf, bind: info >> 4 });
    }
  }
  return { sections, symbols, segments };
}
