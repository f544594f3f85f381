"""Hooks for apps that build on the marketplace (consumers adds each product's default plan)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that creates the product; kwargs: product, actor.
product_created = Signal()
