"""The registry overview on SQLite and PostgreSQL: versions, aliases, alias history, one version in full."""

from __future__ import annotations

import pytest

from cvcycle.db import Database
from cvcycle.demo.sample_home import fill_sample_home
from cvcycle.errors import NotFound
from cvcycle.registry.overview import model_version_page, models_overview
from cvcycle.store import BlobStore


def test_overview(db: Database, store: BlobStore) -> None:
    with db.read() as session:
        assert models_overview(session) == []
    fill_sample_home(db, store)
    with db.read() as session:
        (model,) = models_overview(session)
        assert [(v.version, v.aliases) for v in model.versions] == [
            (2, ["candidate"]),
            (1, ["production"]),
        ]
        assert [c.alias for c in model.alias_history] == ["candidate", "production"]
        page = model_version_page(session, "detector:candidate")
        assert page.model.ref == "detector@2" and page.gate_report and page.gate_report["verdict"] == "PASS"
        assert page.run and page.run.dataset == "home@1" and page.artifacts == {}
        with pytest.raises(NotFound, match="detector@9"):
            model_version_page(session, "detector@9")
