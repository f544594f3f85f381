"""Keeps the search index in step with the catalog (a Celery task, run after commit)."""

from __future__ import annotations

from celery import shared_task

from marketplace.models import Product
from marketplace.search.index import index_product


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def product_index_task(product_id: int) -> None:
    product = Product.objects.filter(pk=product_id).first()
    if product is not None:
        index_product(product)
