"""Qt-free, torch-free, pydicom-free core: volumes, geometry, windowing, overlays."""
