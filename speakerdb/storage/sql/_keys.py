"""The service's keys in SQL (the policy is :mod:`speakerdb.services._keys`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...types import ApiKey
from .._rules import key_taken, no_such_key
from ._models import ApiKeyRow, as_utc

__all__ = ["add_key", "find_key", "list_keys", "revoke_key"]


def list_keys(session: Session) -> list[ApiKey]:
    return [_key(row) for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.name))]


def find_key(session: Session, digest: str) -> ApiKey | None:
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.digest == digest)).first()
    return None if row is None else _key(row)


def add_key(session: Session, key: ApiKey, digest: str) -> None:
    if session.scalars(select(ApiKeyRow).where(ApiKeyRow.name == key.name)).first() is not None:
        raise key_taken(key.name)
    session.add(
        ApiKeyRow(
            name=key.name,
            scope=key.scope,
            digest=digest,
            created_at=key.created_at,
            group_name=key.group,
        )
    )
    session.flush()


def revoke_key(session: Session, name: str) -> ApiKey:
    row = session.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)).first()
    if row is None:
        raise no_such_key(name)
    session.delete(row)
    session.flush()
    return _key(row)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.name, row.scope, as_utc(row.created_at), row.group_name)
