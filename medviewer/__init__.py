"""medviewer: a desktop DICOM viewer with AI assist."""

__version__ = "0.1.0"
