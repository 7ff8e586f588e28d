/** A refusal of the Part 10 reader; the message names offsets, tags and VRs only, never values. */
export class MalformedDicomError extends Error {}
