"""The public catalog: browse, filter, search, and each product's page."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse

from accounts.models import User
from config.htmx import render_page_or_partial
from consumers.selectors import plans_of
from marketplace import selectors
from marketplace.forms import CatalogFilterForm
from marketplace.search import query as search
from marketplace.search.embeddings import get_embedder
from marketplace.snippets import product_snippets


def search_available() -> bool:
    return get_embedder() is not None


def _viewer(request: HttpRequest) -> User | None:
    user = request.user
    return user if isinstance(user, User) else None


def catalog(request: HttpRequest) -> HttpResponse:
    """Browse and search. ``mode=semantic`` ranks by meaning (when the embedding model is
    installed); otherwise keywords, ranked by full-text relevance."""
    form = CatalogFilterForm(request.GET or None)
    products = selectors.catalog_products(_viewer(request))
    text, mode = "", "keyword"
    if form.is_valid():
        data = form.cleaned_data
        products = selectors.catalog_filter(
            products, kind=data["kind"], category=data["category"], provider=data["provider"]
        )
        text, mode = data["q"].strip(), data["mode"] or "keyword"
    entries: list[dict[str, Any]]
    if text and mode == "semantic":
        hits = search.semantic_search(products, text, limit=30)
        entries = [{"product": hit.product, "score": hit.score, "tool": hit.matched_tool} for hit in hits]
    else:
        ranked = search.keyword_search(products, text) if text else products.order_by("name")
        entries = [{"product": product} for product in ranked]
    page = Paginator(entries, 24).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "text": text,
        "mode": mode,
        "semantic_available": search_available() if mode == "semantic" else True,
    }
    return render_page_or_partial(request, "marketplace/catalog.html", "marketplace/_catalog_results.html", context)


def product_page(request: HttpRequest, slug: str) -> HttpResponse:
    product = selectors.catalog_product_get(_viewer(request), slug)
    version = selectors.latest_live_version(product)
    versions = selectors.live_versions(product)
    context = {
        "product": product,
        "version": version,
        "versions": versions,
        "snippets": product_snippets(product, version),
        "plans": plans_of(product).select_related("version"),
    }
    return render_page_or_partial(request, "marketplace/product_page.html", "marketplace/product_page.html", context)
