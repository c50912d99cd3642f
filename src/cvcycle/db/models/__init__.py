"""ORM models, one module per area; everything is re-exported here for ``from cvcycle.db.models import X``."""

from cvcycle.db.models.annotation import Assignment, Review
from cvcycle.db.models.base import Base, BigId, as_utc, utcnow
from cvcycle.db.models.data import (
    Dataset,
    DatasetFrame,
    DatasetMedia,
    DatasetVersion,
    Frame,
    Label,
    Media,
    Segment,
    Slice,
    Tag,
)
from cvcycle.db.models.feedback import Event, Report, ReviewSample, Task
from cvcycle.db.models.runs import AliasChange, ModelAlias, ModelVersion, Run

__all__ = [
    "AliasChange",
    "Assignment",
    "Base",
    "BigId",
    "Dataset",
    "DatasetFrame",
    "DatasetMedia",
    "DatasetVersion",
    "Event",
    "Frame",
    "Label",
    "Media",
    "ModelAlias",
    "ModelVersion",
    "Report",
    "Review",
    "ReviewSample",
    "Run",
    "Segment",
    "Slice",
    "Tag",
    "Task",
    "as_utc",
    "utcnow",
]
