"""Celery tasks of the marketplace: thin wrappers over services."""

from __future__ import annotations

from celery import shared_task

from marketplace.indexing import product_index_task
from marketplace.services import review

__all__ = ["product_index_task", "versions_retire_due_task"]


@shared_task
def versions_retire_due_task() -> int:
    return review.versions_retire_due()
