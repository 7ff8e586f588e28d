/**
 * The few attributes of a series' WADO-RS metadata (PS3.18 §F.2, application/dicom+json) the viewer
 * needs: the instances in order with their frames, the stored window, the image size.
 */

type DicomJsonValue = string | number | { Alphabetic?: string };
type DicomJsonDataset = Record<string, { vr?: string; Value?: DicomJsonValue[] } | undefined>;

const SOP_INSTANCE_UID = '00080018';
const MODALITY = '00080060';
const INSTANCE_NUMBER = '00200013';
const NUMBER_OF_FRAMES = '00280008';
const ROWS = '00280010';
const COLUMNS = '00280011';
const WINDOW_CENTER = '00281050';
const WINDOW_WIDTH = '00281051';

export interface SeriesInstance {
  sopInstanceUid: string;
  instanceNumber: number | undefined;
  frames: number;
  rows: number | undefined;
  columns: number | undefined;
  modality: string | undefined;
  /** The first stored VOI window (WindowCenter/WindowWidth), if any. */
  window: { center: number; width: number } | undefined;
}

/** One image to show: a frame (1-based, as WADO-RS numbers them) of an instance. */
export interface SeriesFrame {
  instance: SeriesInstance;
  frame: number;
}

function first(dataset: DicomJsonDataset, tag: string): DicomJsonValue | undefined {
  return dataset[tag]?.Value?.[0];
}

function numberOf(dataset: DicomJsonDataset, tag: string): number | undefined {
  const value = first(dataset, tag);
  const parsed = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  return Number.isFinite(parsed) ? parsed : undefined;
}

function stringOf(dataset: DicomJsonDataset, tag: string): string | undefined {
  const value = first(dataset, tag);
  return typeof value === 'string' ? value : undefined;
}

/** The series' instances ordered by InstanceNumber (then UID), each with its frames. */
export function seriesInstances(metadata: unknown): SeriesInstance[] {
  if (!Array.isArray(metadata)) {
    return [];
  }
  const instances = (metadata as DicomJsonDataset[]).flatMap((dataset): SeriesInstance[] => {
    const sopInstanceUid = stringOf(dataset, SOP_INSTANCE_UID);
    if (sopInstanceUid === undefined) {
      return [];
    }
    const center = numberOf(dataset, WINDOW_CENTER);
    const width = numberOf(dataset, WINDOW_WIDTH);
    return [
      {
        sopInstanceUid,
        instanceNumber: numberOf(dataset, INSTANCE_NUMBER),
        frames: Math.max(1, Math.floor(numberOf(dataset, NUMBER_OF_FRAMES) ?? 1)),
        rows: numberOf(dataset, ROWS),
        columns: numberOf(dataset, COLUMNS),
        modality: stringOf(dataset, MODALITY),
        window: center !== undefined && width !== undefined && width >= 1 ? { center, width } : undefined,
      },
    ];
  });
  return instances.sort(
    (a, b) =>
      (a.instanceNumber ?? Number.MAX_SAFE_INTEGER) - (b.instanceNumber ?? Number.MAX_SAFE_INTEGER) ||
      a.sopInstanceUid.localeCompare(b.sopInstanceUid),
  );
}

export function seriesFrames(instances: readonly SeriesInstance[]): SeriesFrame[] {
  return instances.flatMap((instance) =>
    Array.from({ length: instance.frames }, (_, index) => ({ instance, frame: index + 1 })),
  );
}
