"""The public catalog, under /catalog/, and the review queue, under /console/reviews/."""

from __future__ import annotations

from django.urls import path

from marketplace import views_catalog, views_review

catalog_urlpatterns = [
    path("", views_catalog.catalog, name="catalog"),
    path("<slug:slug>/", views_catalog.product_page, name="product_page"),
]

review_urlpatterns = [
    path("", views_review.review_queue, name="review_queue"),
    path("<int:version_id>/<slug:decision>/", views_review.review_decide, name="review_decide"),
]
