"""Reports and exports: annotated PDF, DICOM SEG/SR/SC/encapsulated PDF, NIfTI/NRRD, CSV/JSON.

Qt-free. What is exported is described by :mod:`medviewer.report.content`; the GUI renders key
images with the viewer's own code and hands them over as pixels.
"""
