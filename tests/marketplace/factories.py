"""factory_boy factories of the marketplace models, for arranging tests. (The code under
test writes through the services; a factory only sets the stage, such as a version that
is already published.)"""

from __future__ import annotations

import factory
from django.utils import timezone

from marketplace.models import ApiOperation, McpTool, ModelOffering, Product, ProductVersion
from tests.factories import OrganizationFactory, UserFactory


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    organization = factory.SubFactory(OrganizationFactory)
    kind = Product.Kind.REST_API
    slug = factory.Sequence(lambda n: f"product-{n}")
    name = factory.Sequence(lambda n: f"Product {n}")
    summary = "A product for tests."
    visibility = Product.Visibility.PUBLIC
    created_by = factory.SubFactory(UserFactory)


class ProductVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductVersion

    product = factory.SubFactory(ProductFactory)
    version = factory.Sequence(lambda n: f"1.0.{n}")
    status = ProductVersion.Status.DRAFT
    upstream_url = "https://upstream.example.com"
    created_by = factory.SelfAttribute("product.created_by")


class PublishedVersionFactory(ProductVersionFactory):
    status = ProductVersion.Status.PUBLISHED
    published_at = factory.LazyFunction(timezone.now)


class ApiOperationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApiOperation

    version = factory.SubFactory(ProductVersionFactory)
    method = "GET"
    path = factory.Sequence(lambda n: f"/items/{n}")


class ModelOfferingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelOffering

    version = factory.SubFactory(ProductVersionFactory, product__kind=Product.Kind.MODEL_API)
    public_name = factory.Sequence(lambda n: f"model-{n}")
    upstream_name = factory.LazyAttribute(lambda o: o.public_name)


class McpToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = McpTool

    version = factory.SubFactory(ProductVersionFactory, product__kind=Product.Kind.MCP_SERVER)
    name = factory.Sequence(lambda n: f"tool_{n}")
    input_schema = factory.LazyFunction(lambda: {"type": "object"})
