"""Catalog API, open to anyone (anonymous users included): the products with a live
version that the user may see, searched and filtered, and one product's page."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from accounts.models import User
from marketplace import selectors
from marketplace.api import catalog_serializers as s
from marketplace.api.serializers import VersionBriefOutput
from marketplace.models import Product
from marketplace.search.query import hybrid_search, keyword_search, semantic_search

# Semantic and hybrid searches rank in memory; this bounds how many hits they page over.
MAX_RANKED_HITS = 200


def _viewer(request: Request) -> User | None:
    return request_user(request) if request.user.is_authenticated else None


def _search(products: QuerySet[Product], q: str, mode: str) -> tuple[list[Product], dict[int, s.SearchHit]]:
    """The products matching ``q``, best first, and how each matched."""
    if mode == "keyword":
        found = list(keyword_search(products, q)[:MAX_RANKED_HITS])
        return found, {p.pk: s.SearchHit(score=float(getattr(p, "search_rank", 0.0))) for p in found}
    search = semantic_search if mode == "semantic" else hybrid_search
    hits = search(products, q, limit=MAX_RANKED_HITS)
    return [hit.product for hit in hits], {
        hit.product.pk: s.SearchHit(score=hit.score, matched_tool=hit.matched_tool.name if hit.matched_tool else None)
        for hit in hits
    }


class CatalogListView(generics.ListAPIView[Product]):
    """Products with a published (or deprecated) version: public ones, and the private
    ones of the user's organizations. Sorted by name, or by relevance with ``q``."""

    permission_classes = [permissions.AllowAny]
    serializer_class = s.CatalogSearchResultOutput

    @extend_schema(parameters=[s.CatalogQueryInput])
    def get(self, request: Request) -> Response:
        query = s.CatalogQueryInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        products = selectors.catalog_filter(
            selectors.catalog_products(_viewer(request)).defer("icon"),
            kind=params.get("kind", ""),
            category=params.get("category", ""),
            provider=params.get("provider", ""),
        )
        q = params.get("q", "").strip()
        hits: dict[int, s.SearchHit] = {}
        results: QuerySet[Product] | list[Product] = products.order_by("name", "pk")
        if q:
            results, hits = _search(products, q, params["mode"])
        page = self.paginate_queryset(results)
        data = s.CatalogSearchResultOutput(page, many=True, context={"hits": hits}).data
        return self.get_paginated_response(data)


class CatalogDetailView(APIView):
    permission_classes = [permissions.AllowAny]

    @extend_schema(responses=s.CatalogProductPageOutput)
    def get(self, request: Request, slug: str) -> Response:
        product = selectors.catalog_product_get(_viewer(request), slug)
        latest = selectors.latest_live_version(product)
        body = s.CatalogProductDetailOutput(product).data | {
            "latest_version": s.CatalogVersionOutput(latest).data if latest is not None else None,
            "versions": VersionBriefOutput(selectors.live_versions(product), many=True).data,
        }
        return Response(body)
