"""Image files: reading/writing 8/16-bit PNG, JPEG, TIFF and DICOM, pairing folders, atomic writes."""
