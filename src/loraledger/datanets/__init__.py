"""Datanets: community datasets, contributed row by row under a signed licence (pure core).

* :mod:`.contribution` -- EIP-712 signed contributions (any wallet can sign them) and
  SPDX licence checks;
* :mod:`.content` -- the row schemas, strict JSONL parsing, normalisation and the row
  and batch hashes;
* :mod:`.dedup` -- exact and near-duplicate detection (MinHash LSH).

Nothing here does I/O, touches a database or calls the chain.
"""

from __future__ import annotations

from .content import (
    MAX_ROW_BYTES,
    MAX_ROWS,
    ROW_LEAF_ENCODING,
    SCHEMAS,
    Row,
    content_hash,
    normalise_row,
    normalise_text,
    parse_rows,
    row_hash,
    row_text,
)
from .contribution import (
    CONTRIBUTION_TYPE,
    KNOWN_LICENSES,
    Contribution,
    ContributionDomain,
    check_license,
    digest,
    parse_license,
    parse_signature,
    recover_signer,
    sign_contribution,
    typed_data,
    verify_contribution,
)
from .dedup import Deduplicator, Duplicate

__all__ = [
    "CONTRIBUTION_TYPE",
    "KNOWN_LICENSES",
    "MAX_ROWS",
    "MAX_ROW_BYTES",
    "ROW_LEAF_ENCODING",
    "SCHEMAS",
    "Contribution",
    "ContributionDomain",
    "Deduplicator",
    "Duplicate",
    "Row",
    "check_license",
    "content_hash",
    "digest",
    "normalise_row",
    "normalise_text",
    "parse_license",
    "parse_rows",
    "parse_signature",
    "recover_signer",
    "row_hash",
    "row_text",
    "sign_contribution",
    "typed_data",
    "verify_contribution",
]
