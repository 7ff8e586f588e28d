/**
 * How the hub identifies itself in association negotiation (PS3.8 §D.3.3.2) and in the File Meta
 * Information it writes (PS3.10 §7.1). The class UID is a UUID-derived UID (PS3.5 §B.2): it never
 * changes; the version name follows the package version.
 */
import { HUB_VERSION } from '../../version.ts';

export const IMPLEMENTATION_CLASS_UID = '2.25.46907703177244018664105858738911128193';

/** SH, at most 16 characters. */
export const IMPLEMENTATION_VERSION_NAME = `SOHUB_${HUB_VERSION}`.slice(0, 16);
