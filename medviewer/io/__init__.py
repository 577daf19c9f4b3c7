"""DICOM and image-file input: header scan, study database, series loading (pydicom, SimpleITK)."""
