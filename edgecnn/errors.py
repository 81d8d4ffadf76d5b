"""The exceptions edgecnn raises on bad input.

The CLI turns any `EdgecnnError` into one line on stderr and a non-zero exit;
everything else is a bug and keeps its traceback.
"""


class EdgecnnError(Exception):
    """Base of every error caused by the user's input or environment."""


class DataError(EdgecnnError):
    """A dataset could not be found, read or trusted."""


class IdxFormatError(DataError):
    """An IDX file is malformed: bad magic, bad dims, truncated, mismatched."""


class DatasetNotFoundError(DataError):
    """No folder holds the requested dataset."""


class DownloadError(DataError):
    """Every mirror failed."""


class ChecksumError(DownloadError):
    """A file's SHA-256 is not the published one."""


class ModelError(EdgecnnError):
    """A model (float or int8) is malformed or unsupported."""


class UnknownArchitectureError(ModelError):
    """The architecture name is not one edgecnn defines."""


class CheckpointError(ModelError):
    """A file is not an edgecnn checkpoint, or one from a newer edgecnn."""


class ShapeError(ModelError):
    """An input or a layer has the wrong shape."""


class TFLiteFormatError(ModelError):
    """A file is not a valid .tflite flatbuffer, or not an int8 model edgecnn can run."""


class UnsupportedOpError(ModelError):
    """A model uses an operator edgecnn does not implement."""


class TrainingError(EdgecnnError):
    """Training cannot go on: the loss became NaN or infinite."""


class QuantizationError(EdgecnnError):
    """A float model cannot be quantized (NaN weights, unsupported layer, ...)."""


class CalibrationError(QuantizationError):
    """The calibration set is empty or has the wrong shape."""


class BackendUnavailableError(EdgecnnError):
    """A requested backend (LiteRT, onnxruntime, Numba) is not installed."""
