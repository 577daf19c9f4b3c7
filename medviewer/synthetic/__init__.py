"""Synthetic data, no patient data anywhere: phantoms, a synthetic DICOM writer and the demo study.

- :mod:`~medviewer.synthetic.phantom`: chest phantoms (numpy and SimpleITK only): CT volumes with
  truth labels and radiographs projected from them; the demo study and the training data.
- :mod:`~medviewer.synthetic.dicom_writer`: DICOM series with known geometry and voxel values;
  the tests' truth, the benchmarks' input.
- :mod:`~medviewer.synthetic.demo`: the demo study (``medviewer demo-data``, ``medviewer --demo``).

Imports core only (and pydicom, SimpleITK lazily): never io, whose readers the data tests.
"""
