# Oracle for test/dicomweb-bulkdata.test.ts (pydicom 2.3): copies each source file with fresh UIDs
# (encoding kept as written), optionally with a JPEG icon in an Icon Image Sequence (encapsulated
# pixel data inside a sequence item), or with attributes set (`set`), and prints, for each, its UIDs
# and every binary value by its bulk data path (`tag` or `seq/item/.../tag`): native values as
# little-endian bytes, encapsulated pixel data as its frames by pydicom's own fragment splitting and
# as all its fragments joined; with `native`, the single frame decoded by pydicom. JSON on stdout.
import base64
import json
import sys

import pydicom
from pydicom.encaps import defragment_data, encapsulate, generate_pixel_data_frame
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

plan = json.loads(sys.argv[1])
work_dir = sys.argv[2]
BINARY_VRS = {'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN', 'OB or OW', 'US or OW'}
SWAP = {'OW': 2, 'OF': 4, 'OL': 4, 'OD': 8, 'OV': 8}
result = {}


def tag_key(tag):
    return f"{tag.group:04X}{tag.element:04X}"


def little_endian(raw, vr, big_endian):
    size = SWAP.get(vr)
    if not big_endian or size is None:
        return raw
    return b''.join(raw[i:i + size][::-1] for i in range(0, len(raw), size))


def walk(dataset, prefix, big_endian, out):
    frames = int(dataset.get('NumberOfFrames', 1) or 1)
    for element in dataset:
        key = tag_key(element.tag)
        if element.VR == 'SQ':
            for index, item in enumerate(element.value):
                walk(item, prefix + [key, str(index)], big_endian, out)
            continue
        binary = element.VR in BINARY_VRS or key in ('7FE00008', '7FE00009', '7FE00010')
        if not binary or element.value is None or len(element.value) == 0:
            continue
        path = '/'.join(prefix + [key])
        if key == '7FE00010' and element.is_undefined_length:
            out[path] = {
                'frames': [base64.b64encode(f).decode() for f in generate_pixel_data_frame(element.value, frames)],
                'fragments': base64.b64encode(defragment_data(element.value)).decode(),
            }
        else:
            out[path] = {'value': base64.b64encode(little_endian(element.value, element.VR, big_endian)).decode()}


def add_icon(ds):
    """An Icon Image Sequence item whose Pixel Data is encapsulated: the first frame of the image again."""
    first = next(generate_pixel_data_frame(ds.PixelData, int(ds.get('NumberOfFrames', 1) or 1)))
    icon = Dataset()
    for keyword in ('SamplesPerPixel', 'PhotometricInterpretation', 'Rows', 'Columns', 'BitsAllocated',
                    'BitsStored', 'HighBit', 'PixelRepresentation', 'PlanarConfiguration'):
        if keyword in ds:
            setattr(icon, keyword, getattr(ds, keyword))
    icon.PixelData = encapsulate([first])
    icon['PixelData'].VR = 'OB'
    icon['PixelData'].is_undefined_length = True
    ds.IconImageSequence = [icon]


for entry in plan:
    name = entry['name']
    path = f"{work_dir}/{name}.out.dcm"
    ds = pydicom.dcmread(entry['source'])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    if entry.get('icon'):
        add_icon(ds)
    for keyword, value in entry.get('set', {}).items():
        setattr(ds, keyword, value)
    ds.save_as(path, write_like_original=True)
    ds = pydicom.dcmread(path)
    bulk = {}
    walk(ds, [], not ds.is_little_endian, bulk)
    result[name] = {
        'path': path, 'sop': ds.SOPInstanceUID, 'study': ds.StudyInstanceUID, 'series': ds.SeriesInstanceUID,
        'transferSyntax': str(ds.file_meta.TransferSyntaxUID), 'bulk': bulk,
    }
    if entry.get('native'):
        # The first frame decoded by pydicom's own handlers (Pillow's libjpeg for JPEG Baseline).
        result[name]['native'] = base64.b64encode(ds.pixel_array.astype('<u2' if ds.BitsAllocated > 8 else 'u1').tobytes()).decode()

json.dump(result, sys.stdout)
