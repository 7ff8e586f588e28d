# Oracle for test/dicomweb-frames-rendered.test.ts (pydicom 2.3 + numpy): writes the fixtures
# (copies with fresh UIDs where the originals share them) and prints, for each, its UIDs, its
# stored frames (pydicom's own fragment splitting) and its frames as native little-endian samples
# (from pixel_array), as JSON.
import base64
import json
import sys

import numpy as np
import pydicom
from pydicom.encaps import generate_pixel_data_frame
from pydicom.uid import generate_uid, ExplicitVRLittleEndian
from pydicom.dataset import Dataset, FileMetaDataset

plan = json.loads(sys.argv[1])
source_dir, work_dir = sys.argv[2], sys.argv[3]
result = {}


def large_image(path):
    """A 5001 x 5001 8-bit image: over the server's rendering limit of 25 megapixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = 'LARGE-1', 'OT'
    ds.Rows = ds.Columns = 5001
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, 'MONOCHROME2'
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.zeros((5001, 5001), dtype=np.uint8).tobytes()
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.save_as(path, write_like_original=False)


for entry in plan:
    name = entry['name']
    path = f"{work_dir}/{name}.dcm"
    if entry['source'] == 'large':
        large_image(path)
        ds = pydicom.dcmread(path)
        result[name] = {'path': path, 'sop': ds.SOPInstanceUID, 'study': ds.StudyInstanceUID, 'series': ds.SeriesInstanceUID}
        continue
    ds = pydicom.dcmread(f"{source_dir}/{entry['source']}")
    if entry.get('newUids'):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        if entry.get('study'):
            ds.StudyInstanceUID = result[entry['study']]['study']
    for keyword, value in entry.get('set', {}).items():
        setattr(ds, keyword, value)
    ds.save_as(path, write_like_original=True)
    ds = pydicom.dcmread(path)
    frames = int(ds.get('NumberOfFrames', 1) or 1)
    info = {
        'path': path, 'sop': ds.SOPInstanceUID, 'study': ds.StudyInstanceUID, 'series': ds.SeriesInstanceUID,
        'transferSyntax': str(ds.file_meta.TransferSyntaxUID), 'frames': frames, 'rows': ds.Rows, 'columns': ds.Columns,
    }
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        info['stored'] = [base64.b64encode(frame).decode() for frame in generate_pixel_data_frame(ds.PixelData, frames)]
    try:
        array = ds.pixel_array
        if frames == 1:
            array = array[None]
        native = []
        for frame in array:
            if ds.SamplesPerPixel == 3 and ds.get('PlanarConfiguration', 0) == 1:
                frame = frame.transpose(2, 0, 1)
            native.append(base64.b64encode(frame.astype(frame.dtype.newbyteorder('<')).tobytes()).decode())
        info['native'] = native
        if entry.get('values'):
            info['values'] = array[0].astype(np.float64).ravel().tolist()
    except Exception as error:  # no pydicom decoder for this syntax here
        info['nativeError'] = type(error).__name__
    result[name] = info

json.dump(result, sys.stdout)
