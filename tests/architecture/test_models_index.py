"""gateway/models.py keeps every table in one module with an index at its top (issue 19 §3):
the index names each mapped class and its table, so it cannot fall behind."""

from __future__ import annotations

from gateway import models


def test_the_index_names_every_table() -> None:
    index = models.__doc__ or ""
    mapped = models.Base.registry.mappers
    words = set(index.replace("(", " ").replace(")", " ").replace(";", " ").split())
    missing = [
        f"{m.class_.__name__} ({m.class_.__tablename__})"
        for m in mapped
        if m.class_.__name__ not in words or m.class_.__tablename__ not in words
    ]
    assert missing == []
    assert len(mapped) == len({m.class_.__tablename__ for m in mapped})
