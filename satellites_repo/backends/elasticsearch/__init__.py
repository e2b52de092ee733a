"""The Elasticsearch backend: externally versioned documents behind aliases, and ranking.

``_backend`` applies changes and answers health and drift questions, ``_query`` turns a
repository query into Elasticsearch's, ``_reindex`` rebuilds an index without downtime,
``_evolve`` brings each existing index up to its declaration at start (``_mapping`` is the
diff between the two).
"""

from __future__ import annotations

from satellites_repo.backends.elasticsearch._backend import ElasticsearchBackend

__all__ = ["ElasticsearchBackend"]
