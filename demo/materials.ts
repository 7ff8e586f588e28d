/**
 * What the demo sends besides FHIR JSON: the patient's records as a real PDF, and a CT and an MR
 * study made from pydicom's test files with fresh UIDs and the attributes the case matching reads,
 * sent with dcmtk's storescu.
 */
import { spawn } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { PDFDocument, StandardFonts } from 'pdf-lib';

export const PYDICOM_TEST_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/** A discharge summary of `pages` pages; invented text, no real person. */
export async function recordsPdf(pages: number): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  pdf.setTitle('Discharge summary (demo)');
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let number = 1; number <= pages; number++) {
    const page = pdf.addPage([612, 792]);
    page.drawText(`Discharge summary - page ${number} of ${pages}`, { x: 72, y: 720, size: 16, font });
    page.drawText('Demonstration document of the second-opinion hub; no real patient.', {
      x: 72,
      y: 690,
      size: 11,
      font,
    });
  }
  return pdf.save();
}

/** A DICOM UID under the UUID root 2.25 (PS3.5 §B.2). */
export function freshUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(15).toString('hex')}`)}`;
}

interface ToolRun {
  code: number | null;
  output: string;
}

function run(command: string, args: readonly string[], timeoutMs = 60_000): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${command} could not be started (${err.message}); install dcmtk`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export interface StudyFile {
  path: string;
  studyInstanceUid: string;
}

/**
 * A copy of a pydicom test file as a new study: new Study/Series/SOP Instance UIDs, and the
 * AccessionNumber, PatientID and birth date given.
 */
export async function studyFile(
  workDir: string,
  source: 'CT_small.dcm' | 'MR_small.dcm',
  attributes: { accessionNumber: string; patientId: string; birthDate: string },
): Promise<StudyFile> {
  const target = path.join(workDir, `${path.basename(source, '.dcm')}-${randomBytes(4).toString('hex')}.dcm`);
  await copyFile(path.join(PYDICOM_TEST_FILES, source), target);
  const studyInstanceUid = freshUid();
  const values: [string, string][] = [
    ['0020,000D', studyInstanceUid],
    ['0008,0050', attributes.accessionNumber],
    ['0010,0020', attributes.patientId],
    ['0010,0030', attributes.birthDate],
  ];
  // -gse/-gin: new Series and SOP Instance UIDs (the file meta follows); -nb: no .bak file.
  const result = await run('dcmodify', [
    '-nb',
    '-gse',
    '-gin',
    ...values.flatMap(([tag, value]) => ['-i', `(${tag})=${value}`]),
    target,
  ]);
  if (result.code !== 0) {
    throw new Error(`dcmodify failed on ${source}:\n${result.output}`);
  }
  return { path: target, studyInstanceUid };
}

/** C-STORE of the files to the hub's DIMSE listener. */
export async function sendStudies(
  target: { host: string; port: number; calledAe: string; callingAe: string },
  files: readonly string[],
): Promise<void> {
  const result = await run(
    'storescu',
    ['-aet', target.callingAe, '-aec', target.calledAe, target.host, String(target.port), ...files],
    120_000,
  );
  if (result.code !== 0) {
    throw new Error(`storescu to ${target.host}:${target.port} failed:\n${result.output}`);
  }
}
