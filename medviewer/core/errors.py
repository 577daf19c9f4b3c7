"""A small exception hierarchy shared by every layer."""


class MedviewerError(Exception):
    """Base class of every error medviewer raises on purpose."""


class LoadError(MedviewerError):
    """A file, series or volume could not be read or assembled."""


class GeometryError(MedviewerError, ValueError):
    """An affine, orientation or slice arrangement is invalid."""


class DatabaseError(MedviewerError):
    """The study database cannot be opened or is not a medviewer database."""


class CancelledError(MedviewerError):
    """Long work was cancelled by the caller."""


class ModelCardError(MedviewerError):
    """A model card is missing a field or holds an invalid value."""


class InferenceError(MedviewerError):
    """A model run failed."""


class NetworkError(MedviewerError):
    """A PACS could not be reached, refused a request or answered with an error."""
