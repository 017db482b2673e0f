"""Prefect 3's ``prefect.utilities.annotations``: the wrappers that tell a task call how to
treat one argument (defined in ``calls.py``, where arguments are walked)."""

from prefect_like.calls import Annotation as BaseAnnotation
from prefect_like.calls import allow_failure, opaque, quote, unmapped

__all__ = ["BaseAnnotation", "allow_failure", "opaque", "quote", "unmapped"]
