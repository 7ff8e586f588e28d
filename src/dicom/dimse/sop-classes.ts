/**
 * Which abstract syntaxes the SCP accepts: Verification, Study and Patient Root Q/R FIND (PS3.4
 * Annex C), and every storage SOP class (PS3.4 Annex B),
 * including storage classes outside the 1.2.840.10008.5.1.4.1.1 arc and common vendor-private ones.
 */

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';
/** PS3.4 Annex C Query/Retrieve Information Models – FIND. */
export const PATIENT_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.1.1';
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/** The C-FIND identifier is read and written by our own data set code: Implicit and Explicit VR Little Endian only. */
const QUERY_TRANSFER_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);

const STANDARD_STORAGE_ARC = '1.2.840.10008.5.1.4.1.1.';

/** Storage SOP classes of PS3.4 whose UIDs live outside the main storage arc. */
const OTHER_STANDARD_STORAGE = new Set([
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol Storage
  '1.2.840.10008.5.1.4.39.1', // Color Palette Storage
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template Storage
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template Storage
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group Storage
  '1.2.840.10008.5.1.4.34.7', // RT Beams Delivery Instruction Storage
  '1.2.840.10008.5.1.4.34.10', // RT Brachy Application Setup Delivery Instruction Storage
]);

/** Vendor-private storage SOP classes that modalities in the field still send. */
const PRIVATE_STORAGE = new Set([
  '1.2.840.113619.4.2', // GE Private MR Image Storage
  '1.2.840.113619.4.3', // GE Private CT Image Storage
  '1.2.840.113619.4.26', // GE Private 3D Model Storage
  '1.2.840.113619.4.30', // GE Private PET Raw Data Storage
  '1.3.12.2.1107.5.9.1', // Siemens CSA Non-Image Storage
  '1.2.840.113543.6.6.1.3.10001', // Philips Private 3D Object Storage
  '1.2.840.113543.6.6.1.3.10002', // Philips Private Surface Storage
  '1.3.46.670589.2.5.1.1', // Philips Private 3D Presentation State Storage
  '1.3.46.670589.5.0.1', // Philips Private MR Spectrum Storage
  '1.3.46.670589.11.0.0.12.1', // Philips Private MR Series Data Storage
  '1.3.46.670589.11.0.0.12.2', // Philips Private MR Spectrum Storage
  '1.3.46.670589.11.0.0.12.4', // Philips Private MR Examcard Storage
]);

export function isStorageSopClass(uid: string): boolean {
  return (
    (uid.startsWith(STANDARD_STORAGE_ARC) && uid.length > STANDARD_STORAGE_ARC.length) ||
    OTHER_STANDARD_STORAGE.has(uid) ||
    PRIVATE_STORAGE.has(uid)
  );
}

export function isQuerySopClass(uid: string): boolean {
  return uid === STUDY_ROOT_FIND || uid === PATIENT_ROOT_FIND;
}

export function isAcceptedAbstractSyntax(uid: string): boolean {
  return uid === VERIFICATION_SOP_CLASS || isStorageSopClass(uid) || isQuerySopClass(uid);
}

/** Whether a proposed transfer syntax can be accepted for an abstract syntax. */
export function isAcceptedTransferSyntax(abstractSyntaxUid: string, transferSyntaxUid: string): boolean {
  return isQuerySopClass(abstractSyntaxUid)
    ? QUERY_TRANSFER_SYNTAXES.has(transferSyntaxUid)
    : isValidUid(transferSyntaxUid);
}

/** PS3.5 §9.1: a UID is at most 64 characters of digits and dots, no empty or zero-led component. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/.test(uid);
}
