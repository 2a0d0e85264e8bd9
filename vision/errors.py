"""Errors of the camera pipeline.

Every failure that a person running cameras can act on has its own type under
``CitywatchError``; its message names the problem and the thing it concerns
(file, camera, model), so it can be printed as one line without a traceback.

    CitywatchError
     ├── ConfigError            a camera file or setting is wrong
     ├── SourceError            a video source cannot be opened or read
     │    └── CameraUnavailable a live camera does not answer
     ├── FrameError             one frame or image is unusable
     ├── ModelLoadError         a detector model cannot be loaded or used
     ├── StoreError             the object store refused or is unreachable
     │    └── ClipUploadError   one evidence object could not be stored
     └── SinkError              a ticket could not be filed
          └── SinkUnavailable   the service or its database is down for now
"""


class CitywatchError(Exception):
    """Base of every error the pipeline raises on purpose."""


class ConfigError(CitywatchError, ValueError):
    """A camera file, zone or setting is invalid."""


class SourceError(CitywatchError):
    """A video source cannot be opened, or its data is not video."""


class CameraUnavailable(SourceError):
    """A live camera cannot be reached, or stopped sending frames."""


class FrameError(CitywatchError, ValueError):
    """A frame or image cannot be analysed: wrong shape, dtype or size."""


class ModelLoadError(CitywatchError):
    """A detector model file cannot be loaded or has an unknown layout."""


class StoreError(CitywatchError):
    """The object store is unreachable or refused a request."""


class ClipUploadError(StoreError):
    """One evidence object could not be put in the object store."""


class SinkError(CitywatchError):
    """A ticket sink could not file an event (the service is unreachable)."""


class SinkUnavailable(SinkError):
    """The ticket service (or its database) cannot be reached now; the same
    filing may succeed later."""
