"""``manage.py search_reindex [--product SLUG ...]``: (re)compute semantic-search
embeddings. Unchanged texts are skipped, so running it again is cheap."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from marketplace.models import Product
from marketplace.search.embeddings import get_embedder
from marketplace.search.index import IndexResult, index_product, reindex_all


class Command(BaseCommand):
    help = "Compute the embeddings of semantic search for every product (or the ones named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--product", action="append", default=[], metavar="SLUG", help="Only this product (repeatable)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        embedder = get_embedder()
        if embedder is None:
            raise CommandError(
                "Semantic search is off (SEMANTIC_SEARCH_ENABLED is False, or the 'semantic' extra is not "
                "installed): nothing to index. Keyword search needs no index."
            )
        slugs: list[str] = options["product"]
        if slugs:
            products = list(Product.objects.filter(slug__in=slugs).prefetch_related("categories"))
            missing = sorted(set(slugs) - {product.slug for product in products})
            if missing:
                raise CommandError(f"No such product: {', '.join(missing)}")
            result = IndexResult()
            for product in products:
                result += index_product(product, embedder=embedder) or IndexResult()
        else:
            result = reindex_all(embedder=embedder) or IndexResult()
        self.stdout.write(
            f"{embedder.model_name}: {result.embedded} texts embedded, {result.reused} reused, "
            f"{result.unchanged} unchanged, {result.deleted} stale embeddings deleted."
        )
