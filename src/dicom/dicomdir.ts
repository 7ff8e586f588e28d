/**
 * A DICOMDIR (PS3.10 §8.6, the Basic Directory IOD of PS3.3 §F.3): the files its directory records
 * refer to, each Referenced File ID (0004,1500) as a path relative to the DICOMDIR's own folder.
 * Only the references are read: what the records say of patients and studies is not needed, since
 * each file is read for itself.
 */
import { getString } from './attributes.ts';
import { DEFAULT_PART10_LIMITS, parsePart10, parsePart10File } from './part10.ts';
import type { Part10Limits, Part10Result } from './part10.ts';

/** Media Storage Directory Storage: the SOP Class of a DICOMDIR file (PS3.4 Annex F). */
export const MEDIA_STORAGE_DIRECTORY_SOP_CLASS = '1.2.840.10008.1.3.10';
const DIRECTORY_RECORD_SEQUENCE = '00041220';
const REFERENCED_FILE_ID = '00041500';

/**
 * A DVD's DICOMDIR lists tens of thousands of records of a dozen elements each: past an instance's
 * limits, and made only of short values, so the larger bounds still bound the work.
 */
const DICOMDIR_LIMITS: Partial<Part10Limits> = {
  maxElements: 40 * DEFAULT_PART10_LIMITS.maxElements,
  maxWork: 40 * DEFAULT_PART10_LIMITS.maxWork,
};

export type DicomdirResult = { ok: true; referencedFiles: string[] } | { ok: false; reason: string };

/** The files a DICOMDIR refers to, from its file on disk or its bytes (a zip entry). */
export function readDicomdir(source: string | Buffer): DicomdirResult {
  const parsed: Part10Result =
    typeof source === 'string'
      ? parsePart10File(source, { limits: DICOMDIR_LIMITS })
      : parsePart10(source, { limits: DICOMDIR_LIMITS });
  if (!parsed.ok) {
    return { ok: false, reason: parsed.reason };
  }
  if (parsed.meta.mediaStorageSopClassUid !== MEDIA_STORAGE_DIRECTORY_SOP_CLASS) {
    return { ok: false, reason: 'not a DICOMDIR: its Media Storage SOP Class is not Media Storage Directory Storage' };
  }
  const records = parsed.dataset.elements.get(DIRECTORY_RECORD_SEQUENCE)?.items ?? [];
  const referencedFiles = new Set<string>();
  for (const record of records) {
    const fileId = getString(record, REFERENCED_FILE_ID);
    // PS3.10 §8.5: the components of a File ID, separated by backslashes, name folders and the file.
    const components = fileId
      ?.split('\\')
      .map((component) => component.trim())
      .filter((component) => component !== '');
    if (components && components.length > 0) {
      referencedFiles.add(components.join('/'));
    }
  }
  return { ok: true, referencedFiles: [...referencedFiles] };
}
