/**
 * Window/level presets (center and width in Hounsfield units) for CT, the values radiologists use
 * for each tissue; other modalities have no fixed scale and get the images' own window or a custom one.
 */
export interface VoiWindow {
  center: number;
  width: number;
}

export interface WindowPreset {
  id: string;
  label: string;
  window: VoiWindow;
}

export const CT_PRESETS: readonly WindowPreset[] = [
  { id: 'soft-tissue', label: 'Soft tissue (C 40, W 400)', window: { center: 40, width: 400 } },
  { id: 'lung', label: 'Lung (C −600, W 1500)', window: { center: -600, width: 1500 } },
  { id: 'mediastinum', label: 'Mediastinum (C 50, W 350)', window: { center: 50, width: 350 } },
  { id: 'bone', label: 'Bone (C 400, W 1800)', window: { center: 400, width: 1800 } },
  { id: 'brain', label: 'Brain (C 40, W 80)', window: { center: 40, width: 80 } },
  { id: 'liver', label: 'Liver (C 30, W 150)', window: { center: 30, width: 150 } },
];

export function presetsFor(modality: string | undefined): readonly WindowPreset[] {
  return modality === 'CT' ? CT_PRESETS : [];
}
