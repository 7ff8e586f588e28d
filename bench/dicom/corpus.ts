/**
 * The ingest corpus: pydicom's valid test files (picked from the classification in
 * test/support/dicom/testdata/pydicom-testfiles-classified.txt), copied once per patient and given fresh
 * SOP Instance / Series Instance UIDs and a per-study StudyInstanceUID, PatientID, PatientName and
 * AccessionNumber with DCMTK's `dcmodify`. Transfer syntaxes are kept as they are.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

export interface CorpusFile {
  path: string;
  size: number;
  sopClassUid: string;
  transferSyntaxUid: string;
}

export interface Corpus {
  dir: string;
  files: CorpusFile[];
  bytes: number;
  patients: number;
  studiesPerPatient: number;
  sources: string[];
}

/** Valid = Part 10 file with a SOP class, read strictly by pydicom, dumped by dcmtk without error. */
export function validSourceFiles(classificationFile: string): string[] {
  const lines = fs.readFileSync(classificationFile, 'utf8').split('\n');
  const picked: string[] = [];
  for (const line of lines) {
    const name = line.split(/\s+/)[0];
    if (
      !name ||
      !line.includes(' p10=1 ') ||
      line.includes('sop=None') ||
      !line.includes('strict=ok') ||
      !line.includes('dump_rc=0')
    ) {
      continue;
    }
    // TINY_ALPHA: 740-byte CT headers without pixel data (a DICOMDIR fixture); badVR: deliberately odd VRs;
    // rtdose_rle*: odd-length OW pixel data that dcmodify refuses to rewrite ("Corrupted data").
    if (name.includes('TINY_ALPHA') || name.startsWith('badVR') || name.startsWith('rtdose_rle')) {
      continue;
    }
    picked.push(name);
  }
  return picked.sort();
}

function newUid(): string {
  return `2.25.${BigInt(`0x${crypto.randomBytes(15).toString('hex')}`).toString()}`;
}

/** Reads (0002,0002) and (0002,0010) from a Part 10 file's meta group (always explicit VR little endian). */
export function readMeta(file: string): { sopClassUid: string; transferSyntaxUid: string } {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(4096);
  const n = fs.readSync(fd, buf, 0, buf.length, 0);
  fs.closeSync(fd);
  if (n < 132 || buf.toString('latin1', 128, 132) !== 'DICM') {
    throw new Error(`${file}: not a DICOM Part 10 file`);
  }
  let off = 132;
  let sopClassUid = '';
  let transferSyntaxUid = '';
  while (off + 8 <= n && buf.readUInt16LE(off) === 0x0002) {
    const element = buf.readUInt16LE(off + 2);
    const vr = buf.toString('latin1', off + 4, off + 6);
    let len: number;
    let header: number;
    if (['OB', 'OW', 'OF', 'SQ', 'UT', 'UN'].includes(vr)) {
      len = buf.readUInt32LE(off + 8);
      header = 12;
    } else {
      len = buf.readUInt16LE(off + 6);
      header = 8;
    }
    const value = buf.toString('latin1', off + header, off + header + len).replace(/[\0 ]+$/, '');
    if (element === 0x0002) {
      sopClassUid = value;
    }
    if (element === 0x0010) {
      transferSyntaxUid = value;
    }
    off += header + len;
  }
  return { sopClassUid, transferSyntaxUid };
}

function listFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .sort();
}

export function buildCorpus(options: {
  dir: string;
  classificationFile: string;
  patients: number;
  studiesPerPatient: number;
  log: (line: string) => void;
}): Corpus {
  const { dir, patients, studiesPerPatient } = options;
  const sources = validSourceFiles(options.classificationFile);
  const marker = `${dir}.json`; // outside the folder: storescu +sd sends every file in it
  const signature = JSON.stringify({ version: 1, patients, studiesPerPatient, sources });
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === signature) {
    options.log(`reusing corpus in ${dir}`);
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const perStudy = Math.ceil(sources.length / studiesPerPatient);
    for (let p = 1; p <= patients; p += 1) {
      const pid = `BENCH-${String(p).padStart(2, '0')}`;
      const patientDir = path.join(dir, pid);
      fs.mkdirSync(patientDir);
      const copies = sources.map((source, i) => {
        const target = path.join(patientDir, `${String(i).padStart(3, '0')}_${source.replace(/[/+]/g, '_')}`);
        fs.copyFileSync(path.join(PYDICOM_TEST_FILES, source), target);
        return target;
      });
      for (let s = 0; s * perStudy < copies.length; s += 1) {
        const group = copies.slice(s * perStudy, (s + 1) * perStudy);
        execFileSync(
          'dcmodify',
          [
            '-q',
            '-nb',
            '-gin',
            '-gse',
            '-i',
            `(0020,000D)=${newUid()}`,
            '-i',
            `(0010,0020)=${pid}`,
            '-i',
            `(0010,0010)=BENCH^PATIENT${p}`,
            '-i',
            `(0008,0050)=ACC${p}${String(s + 1).padStart(2, '0')}`,
            '-i',
            `(0020,0010)=S${p}-${s + 1}`,
            ...group,
          ],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
      }
    }
    fs.writeFileSync(marker, signature);
    options.log(`built corpus in ${dir}`);
  }
  const files = listFiles(dir).map((file) => ({ path: file, size: fs.statSync(file).size, ...readMeta(file) }));
  return { dir, files, bytes: files.reduce((sum, f) => sum + f.size, 0), patients, studiesPerPatient, sources };
}

/**
 * A DCMTK association profile for `storescu -xf FILE Bench`: one presentation context per
 * (SOP class, transfer syntax) found in the corpus plus an uncompressed one per SOP class,
 * so every file goes out in its own encoding, never transcoded.
 */
export function writeStorescuProfile(corpus: Corpus, file: string): number {
  const byClass = new Map<string, Set<string>>();
  for (const f of corpus.files) {
    const set = byClass.get(f.sopClassUid) ?? new Set<string>();
    set.add(f.transferSyntaxUid);
    byClass.set(f.sopClassUid, set);
  }
  const uncompressed = ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2', '1.2.840.10008.1.2.2'];
  const syntaxes = new Set<string>();
  for (const set of byClass.values()) {
    for (const ts of set) {
      if (!uncompressed.includes(ts)) {
        syntaxes.add(ts);
      }
    }
  }
  const tsName = (ts: string): string => `TS_${ts.replace(/\./g, '_')}`;
  const out: string[] = ['[[TransferSyntaxes]]', '[Uncompressed]'];
  uncompressed.forEach((ts, i) => out.push(`TransferSyntax${i + 1} = ${ts}`));
  for (const ts of syntaxes) {
    out.push(`[${tsName(ts)}]`, `TransferSyntax1 = ${ts}`);
  }
  out.push('[[PresentationContexts]]', '[BenchContexts]');
  let n = 0;
  for (const [sop, set] of [...byClass].sort()) {
    n += 1;
    out.push(`PresentationContext${n} = ${sop}\\Uncompressed`);
    for (const ts of [...set].sort()) {
      if (!uncompressed.includes(ts)) {
        n += 1;
        out.push(`PresentationContext${n} = ${sop}\\${tsName(ts)}`);
      }
    }
  }
  if (n > 128) {
    throw new Error(`storescu profile needs ${n} presentation contexts (max 128)`);
  }
  out.push('[[Profiles]]', '[Bench]', 'PresentationContexts = BenchContexts', '');
  fs.writeFileSync(file, out.join('\n'));
  return n;
}
