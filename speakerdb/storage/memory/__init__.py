"""An in-memory :class:`~speakerdb.storage.Storage`: dicts, and brute-force search.

For throw-away databases (``speakerdb evaluate``) and fast tests. It keeps the
contract of the SQLite backend (``tests/test_storage_contract.py``): the same
results, the same errors, changes all-or-nothing.

Every change works on a copy of the state and publishes it whole when it
ends, so a reader holds one unchanging state for as long as it likes and
needs no lock; writers take turns on one lock. Search multiplies the queries
by the matrix of templates, built once per published state.

The modules: the state and its copy (``_state``), the storage that publishes
it (``_storage``), its reads (``_snapshot``) and writes (``_change``), and the
parts with rules of their own: replay fingerprints (``_prints``), groups and
the search's marks (``_groups``), brute-force search (``_search``).
"""

from __future__ import annotations

from ._storage import MemoryStorage

__all__ = ["MemoryStorage"]
