from __future__ import annotations

from django.urls import path

from marketplace.api import catalog, products, reviews, specs, versions

VERSION = "products/<slug:slug>/versions/<str:version>/"

urlpatterns = [
    # Provider: products
    path("products/", products.ProductListView.as_view(), name="api-products"),
    path("products/<slug:slug>/", products.ProductDetailView.as_view(), name="api-product"),
    path("products/<slug:slug>/icon/", products.ProductIconView.as_view(), name="api-product-icon"),
    # Provider: versions and their lifecycle
    path("products/<slug:slug>/versions/", versions.VersionListView.as_view(), name="api-versions"),
    path(VERSION, versions.VersionDetailView.as_view(), name="api-version"),
    path(f"{VERSION}submit/", versions.VersionSubmitView.as_view(), name="api-version-submit"),
    path(f"{VERSION}withdraw/", versions.VersionWithdrawView.as_view(), name="api-version-withdraw"),
    path(f"{VERSION}deprecate/", versions.VersionDeprecateView.as_view(), name="api-version-deprecate"),
    path(f"{VERSION}retire/", versions.VersionRetireView.as_view(), name="api-version-retire"),
    # Provider: specifications
    path(f"{VERSION}openapi/", specs.OpenApiView.as_view(), name="api-version-openapi"),
    path(f"{VERSION}models/", specs.ModelsView.as_view(), name="api-version-models"),
    path(f"{VERSION}discover/", specs.DiscoverView.as_view(), name="api-version-discover"),
    path(f"{VERSION}rest-to-mcp/", specs.RestToMcpView.as_view(), name="api-version-rest-to-mcp"),
    path(f"{VERSION}rest-to-mcp/higress.yaml", specs.HigressExportView.as_view(), name="api-version-higress"),
    path(f"{VERSION}agent-card/", specs.AgentCardView.as_view(), name="api-version-agent-card"),
    # Staff: review
    path("reviews/", reviews.ReviewListView.as_view(), name="api-reviews"),
    path("reviews/<int:version_id>/approve/", reviews.ReviewApproveView.as_view(), name="api-review-approve"),
    path("reviews/<int:version_id>/reject/", reviews.ReviewRejectView.as_view(), name="api-review-reject"),
    # Anyone: the catalog
    path("catalog/", catalog.CatalogListView.as_view(), name="api-catalog"),
    path("catalog/<slug:slug>/", catalog.CatalogDetailView.as_view(), name="api-catalog-product"),
]
