/**
 * Value representations (PS3.5 §6.2) and the small data dictionary the bounded reader needs for
 * Implicit VR datasets, where the VR is not on the wire. Tags missing here are read as UN.
 */

/** PS3.5 Table 7.1-1: explicit VRs with a 2-byte reserved field and a 32-bit length. */
export const LONG_LENGTH_VRS: ReadonlySet<string> = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);

/** Every VR of PS3.5 Table 6.2-1. */
export const KNOWN_VRS: ReadonlySet<string> = new Set([
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'PN',
  'SH',
  'SL',
  'SQ',
  'SS',
  'ST',
  'SV',
  'TM',
  'UC',
  'UI',
  'UL',
  'UN',
  'UR',
  'US',
  'UT',
  'UV',
]);

/** Binary VRs whose values are bulk data: kept as an offset/length, never bounded by the text limit. */
export const BULK_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** Text VRs whose bytes are decoded with the Specific Character Set (PS3.5 §6.1.2.3). */
export const CHARSET_VRS: ReadonlySet<string> = new Set(['SH', 'LO', 'ST', 'LT', 'UT', 'PN', 'UC']);

/** VRs whose value is a backslash-separated string (PS3.5 §6.4). */
export const STRING_VRS: ReadonlySet<string> = new Set([
  'AE',
  'AS',
  'CS',
  'DA',
  'DS',
  'DT',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'ST',
  'TM',
  'UC',
  'UI',
  'UR',
  'UT',
]);

/** VRs that never carry multiple values (PS3.5 §6.2: no backslash delimiter). */
export const SINGLE_VALUE_STRING_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

/** Bytes per value of the fixed-size binary number VRs. */
export const NUMBER_VR_SIZES: Readonly<Record<string, number>> = {
  US: 2,
  SS: 2,
  UL: 4,
  SL: 4,
  FL: 4,
  FD: 8,
  SV: 8,
  UV: 8,
  AT: 4,
};

export const PIXEL_DATA_TAG = '7FE00010';
export const ITEM_TAG = 0xfffee000;
export const ITEM_DELIMITATION_TAG = 0xfffee00d;
export const SEQUENCE_DELIMITATION_TAG = 0xfffee0dd;
export const UNDEFINED_LENGTH = 0xffffffff;

/** Tags whose value is bulk data whatever their VR (pixel data and its float variants). */
export const BULK_TAGS: ReadonlySet<string> = new Set(['7FE00008', '7FE00009', '7FE00010']);

/**
 * VRs of the attributes the hub reads or that commonly carry binary numbers, for Implicit VR
 * datasets (PS3.6). String-valued attributes read correctly even as UN; binary numbers do not,
 * which is why the image pixel module and the common numeric attributes are listed.
 */
const IMPLICIT_VR_DICTIONARY: Readonly<Record<string, string>> = {
  '00080005': 'CS',
  '00080008': 'CS',
  '00080012': 'DA',
  '00080013': 'TM',
  '00080016': 'UI',
  '00080018': 'UI',
  '00080020': 'DA',
  '00080021': 'DA',
  '00080022': 'DA',
  '00080023': 'DA',
  '00080030': 'TM',
  '00080031': 'TM',
  '00080032': 'TM',
  '00080033': 'TM',
  '00080050': 'SH',
  '00080060': 'CS',
  '00080061': 'CS',
  '00080064': 'CS',
  '00080070': 'LO',
  '00080080': 'LO',
  '00080090': 'PN',
  '00081010': 'SH',
  '00081030': 'LO',
  '0008103E': 'LO',
  '00081040': 'LO',
  '00081090': 'LO',
  '00081115': 'SQ',
  '00081140': 'SQ',
  '00081150': 'UI',
  '00081155': 'UI',
  '00081199': 'SQ',
  '00082112': 'SQ',
  '00100010': 'PN',
  '00100020': 'LO',
  '00100030': 'DA',
  '00100040': 'CS',
  '00101010': 'AS',
  '00101020': 'DS',
  '00101030': 'DS',
  '00180015': 'CS',
  '00180050': 'DS',
  '00180060': 'DS',
  '00180088': 'DS',
  '00181020': 'LO',
  '00185100': 'CS',
  '0020000D': 'UI',
  '0020000E': 'UI',
  '00200010': 'SH',
  '00200011': 'IS',
  '00200012': 'IS',
  '00200013': 'IS',
  '00200020': 'CS',
  '00200032': 'DS',
  '00200037': 'DS',
  '00200052': 'UI',
  '00201040': 'LO',
  '00201041': 'DS',
  '00280002': 'US',
  '00280004': 'CS',
  '00280006': 'US',
  '00280008': 'IS',
  '00280009': 'AT',
  '00280010': 'US',
  '00280011': 'US',
  '00280030': 'DS',
  '00280034': 'IS',
  '00280100': 'US',
  '00280101': 'US',
  '00280102': 'US',
  '00280103': 'US',
  '00280106': 'US',
  '00280107': 'US',
  '00281050': 'DS',
  '00281051': 'DS',
  '00281052': 'DS',
  '00281053': 'DS',
  '00281054': 'LO',
  '00282110': 'CS',
  '00400275': 'SQ',
  '0040A730': 'SQ',
  '0040A040': 'CS',
  '0040A043': 'SQ',
  '0040A160': 'UT',
  '3004000C': 'DS',
  '3004000E': 'DS',
  '30040002': 'CS',
  '30040004': 'CS',
  '3004000A': 'CS',
  '300A0010': 'SQ',
  '300A00B0': 'SQ',
  '300A0070': 'SQ',
  '300A0012': 'IS',
  '300A0022': 'DS',
  '300C0002': 'SQ',
  '300C0004': 'SQ',
  '300C0006': 'IS',
  '300C0020': 'SQ',
  '00080100': 'SH',
  '00080102': 'SH',
  '00080104': 'LO',
  '00080201': 'SH',
  '00081032': 'SQ',
  '00081048': 'PN',
  '00081050': 'PN',
  '00081060': 'PN',
  '00081070': 'PN',
  '00082111': 'ST',
  '00100021': 'LO',
  '00101001': 'PN',
  '00102160': 'SH',
  '00104000': 'LT',
  '00180010': 'LO',
  '00180020': 'CS',
  '00180021': 'CS',
  '00180022': 'CS',
  '00180023': 'CS',
  '00180080': 'DS',
  '00180081': 'DS',
  '00180082': 'DS',
  '00180083': 'DS',
  '00180084': 'DS',
  '00180086': 'IS',
  '00180087': 'DS',
  '00180091': 'IS',
  '00180093': 'DS',
  '00180094': 'DS',
  '00181000': 'LO',
  '00181030': 'LO',
  '00181088': 'IS',
  '00181100': 'DS',
  '00181110': 'DS',
  '00181111': 'DS',
  '00181120': 'DS',
  '00181130': 'DS',
  '00181140': 'CS',
  '00181150': 'IS',
  '00181151': 'IS',
  '00181152': 'IS',
  '00181160': 'SH',
  '00181210': 'SH',
  '00181314': 'DS',
  '00181316': 'DS',
  '00185101': 'CS',
  '00200060': 'CS',
  '00200062': 'CS',
  '00201002': 'IS',
  '00204000': 'LT',
  '00280120': 'US',
  '00281055': 'LO',
  '00281101': 'US',
  '00281102': 'US',
  '00281103': 'US',
  '00281201': 'OW',
  '00281202': 'OW',
  '00281203': 'OW',
  '00282112': 'DS',
  '00282114': 'CS',
  '00321060': 'LO',
  '00400244': 'DA',
  '00400245': 'TM',
  '00400253': 'SH',
  '00400254': 'LO',
  '004008EA': 'SQ',
  '0040A010': 'CS',
  '0040A124': 'UI',
  '0040A168': 'SQ',
  '0040A300': 'SQ',
  '0040A30A': 'DS',
  '00540081': 'US',
  '30040006': 'LO',
  '30040014': 'CS',
  '300A0002': 'SH',
  '300A0003': 'LO',
  '300A0006': 'DA',
  '300A0007': 'TM',
  '300A000C': 'CS',
  '300A0014': 'CS',
  '300A0016': 'LO',
  '300A0020': 'CS',
  '300A0023': 'DS',
  '300A0026': 'DS',
  '300A0071': 'IS',
  '300A0078': 'IS',
  '300A0080': 'IS',
  '300A0084': 'DS',
  '300A0086': 'DS',
  '300A00B2': 'SH',
  '300A00B3': 'CS',
  '300A00B4': 'DS',
  '300A00B6': 'SQ',
  '300A00B8': 'CS',
  '300A00BC': 'IS',
  '300A00C0': 'IS',
  '300A00C2': 'LO',
  '300A00C4': 'CS',
  '300A00C6': 'CS',
  '300A00CE': 'CS',
  '300A00D0': 'IS',
  '300A00E0': 'IS',
  '300A00ED': 'IS',
  '300A00F0': 'IS',
  '300A010E': 'DS',
  '300A0110': 'IS',
  '300A0111': 'SQ',
  '300A0112': 'IS',
  '300A0114': 'DS',
  '300A011A': 'SQ',
  '300A011C': 'DS',
  '300A011E': 'DS',
  '300A0120': 'DS',
  '300A0122': 'DS',
  '300A012C': 'DS',
  '300A0134': 'DS',
  '300A0180': 'SQ',
  '300A0182': 'IS',
  '300C0022': 'IS',
  '300C006A': 'IS',
  '7FE00010': 'OW',
};

/** Pixel-value attributes whose VR is "US or SS", decided by Pixel Representation (PS3.6, PS3.3 §C.7.6.3). */
export const US_OR_SS_TAGS: ReadonlySet<string> = new Set(['00280106', '00280107', '00280120']);

/** The VR of a tag in an Implicit VR dataset (PS3.5 §7.1.3): the dictionary's, or UN. */
export function implicitVr(tagKey: string): string {
  if (tagKey.endsWith('0000')) {
    return 'UL';
  } // group length, PS3.5 §7.2
  return IMPLICIT_VR_DICTIONARY[tagKey] ?? 'UN';
}

/** 'GGGGEEEE' upper-case hex, the key form of DICOM JSON (PS3.18 §F.2.1.1). */
export function tagKeyOf(group: number, element: number): string {
  return hex4(group) + hex4(element);
}

/** Upper-case 4-digit hex, cached: at most 65,536 short strings, and tag keys are built per element. */
const HEX4: (string | undefined)[] = [];
function hex4(value: number): string {
  return (HEX4[value] ??= value.toString(16).padStart(4, '0').toUpperCase());
}

/** '(gggg,eeee)' for human-readable reasons. */
export function tagLabel(group: number, element: number): string {
  return `(${group.toString(16).padStart(4, '0')},${element.toString(16).padStart(4, '0')})`;
}
