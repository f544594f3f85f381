"""What providers offer: products, their versions, and what each version specifies.

A Product is the stable identity (slug, name, owner). A ProductVersion carries everything
that may change between releases (upstream, specification, operations, models, tools) and
goes through review: draft -> in_review -> published -> deprecated -> retired. Published
versions are immutable; a change is a new version.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import (
    MaxLengthValidator,
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
    RegexValidator,
)
from django.db import models

from accounts.models import Organization, slug_validator

semver_validator = RegexValidator(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$",
    "Use a semantic version such as 1.0.0 or 2.1.0-beta.1.",
)
# MCP's own rule for tool names. (The gateway's aggregated endpoint namespaces them into
# at most 64 characters of [A-Za-z0-9_-], which LLM providers require.)
# PostgreSQL refuses NUL in text: refuse it as a validation error, not a crash.
no_nul = ProhibitNullCharactersValidator()
tool_name_validator = RegexValidator(
    r"^[A-Za-z0-9_.-]{1,128}$", "Tool names are 1 to 128 characters of letters, digits, '_', '-' and '.'."
)
header_name_validator = RegexValidator(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$", "Not a valid HTTP header name.")


class Category(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=60)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    class Kind(models.TextChoices):
        REST_API = "rest_api", "REST API"
        MODEL_API = "model_api", "Model API"
        MCP_SERVER = "mcp_server", "MCP server"
        AGENT = "agent", "Agent"

    class Visibility(models.TextChoices):
        PUBLIC = "public", "Public: in the catalog for everyone"
        PRIVATE = "private", "Private: only the provider's organization"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="products")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The slug is global: it names the product in gateway URLs (/api/{slug}, /mcp/{slug}).
    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=100, validators=[no_nul])
    summary = models.CharField(max_length=200, validators=[no_nul], help_text="One sentence, shown in the catalog.")
    description = models.TextField(
        blank=True, max_length=50_000, validators=[MaxLengthValidator(50_000), no_nul], help_text="Markdown."
    )
    categories = models.ManyToManyField(Category, blank=True, related_name="products")
    tags = models.JSONField(default=list, blank=True)
    icon = models.BinaryField(null=True, blank=True, editable=False)
    icon_content_type = models.CharField(max_length=32, blank=True, editable=False)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProductVersion(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        IN_REVIEW = "in_review", "In review"
        PUBLISHED = "published", "Published"
        DEPRECATED = "deprecated", "Deprecated"
        RETIRED = "retired", "Retired"

    class McpTransport(models.TextChoices):
        STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
        SSE = "sse", "Legacy SSE"
        REST_TO_MCP = "rest_to_mcp", "REST-to-MCP (tools mapped to a REST API)"

    # Statuses in which the gateway serves the version.
    LIVE_STATUSES = (Status.PUBLISHED, Status.DEPRECATED)

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64, validators=[semver_validator])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    changelog = models.TextField(blank=True, max_length=20_000, validators=[MaxLengthValidator(20_000), no_nul])

    # Upstream: where the gateway sends traffic, and with which credentials.
    upstream_url = models.URLField(max_length=500, blank=True)
    upstream_auth_header = models.CharField(max_length=100, blank=True, validators=[header_name_validator])
    upstream_secret_encrypted = models.TextField(blank=True, editable=False)
    connect_timeout_ms = models.PositiveIntegerField(
        default=5_000, validators=[MinValueValidator(100), MaxValueValidator(60_000)]
    )
    read_timeout_ms = models.PositiveIntegerField(
        default=60_000, validators=[MinValueValidator(100), MaxValueValidator(3_600_000)]
    )
    tls_verify = models.BooleanField(default=True)

    # Kind-specific documents: the OpenAPI document, the agent card, the MCP server's
    # discovered info, resources and prompts, the REST-to-MCP definition.
    mcp_transport = models.CharField(max_length=16, choices=McpTransport.choices, blank=True)
    spec = models.JSONField(default=dict, blank=True)
    spec_source_url = models.URLField(max_length=500, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True, max_length=5_000, validators=[MaxLengthValidator(5_000)])
    published_at = models.DateTimeField(null=True, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    sunset_at = models.DateTimeField(null=True, blank=True, help_text="When a deprecated version will be retired.")
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["product", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["product", "version"], name="product_version_unique")]

    def __str__(self) -> str:
        return f"{self.product.slug} {self.version}"

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES


class ApiOperation(models.Model):
    """One operation of a REST API version, from its OpenAPI document."""

    version = models.ForeignKey(ProductVersion, on_delete=models.CASCADE, related_name="operations")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    operation_id = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["path", "method"]
        constraints = [models.UniqueConstraint(fields=["version", "method", "path"], name="operation_unique")]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class ModelOffering(models.Model):
    """A model that a model-API version serves: its public name and its upstream's."""

    class Capability(models.TextChoices):
        CHAT = "chat", "Chat completions"
        COMPLETIONS = "completions", "Completions"
        EMBEDDINGS = "embeddings", "Embeddings"
        STREAMING = "streaming", "Streaming"
        TOOLS = "tools", "Tool calling"

    version = models.ForeignKey(ProductVersion, on_delete=models.CASCADE, related_name="models")
    public_name = models.CharField(max_length=100, validators=[RegexValidator(r"^[A-Za-z0-9._:/-]{1,100}$")])
    upstream_name = models.CharField(max_length=200)
    context_window = models.PositiveIntegerField(default=8192, validators=[MinValueValidator(1)])
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal(0), validators=[MinValueValidator(Decimal(0))]
    )
    capabilities = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["public_name"]
        constraints = [models.UniqueConstraint(fields=["version", "public_name"], name="model_offering_unique")]

    def __str__(self) -> str:
        return self.public_name


class McpTool(models.Model):
    """A tool of an MCP-server version: discovered from a remote server, or defined as a
    REST-to-MCP mapping (then ``request_template`` says how to call the REST upstream)."""

    version = models.ForeignKey(ProductVersion, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=128, validators=[tool_name_validator])
    title = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True, max_length=10_000, validators=[MaxLengthValidator(10_000)])
    input_schema = models.JSONField(default=dict)
    output_schema = models.JSONField(null=True, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    request_template = models.JSONField(null=True, blank=True)
    response_template = models.TextField(blank=True, max_length=20_000, validators=[MaxLengthValidator(20_000)])

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["version", "name"], name="mcp_tool_unique")]

    def __str__(self) -> str:
        return self.name


class SearchEmbedding(models.Model):
    """A text's embedding for semantic search: of a product (name, summary, description,
    tags) or of one MCP tool (name, title, description). ``text_sha256`` says which text
    it was computed from, so unchanged texts are not embedded again."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="embeddings")
    tool = models.ForeignKey(McpTool, null=True, blank=True, on_delete=models.CASCADE, related_name="embeddings")
    model_name = models.CharField(max_length=100)
    dimensions = models.PositiveIntegerField()
    vector = models.BinaryField()  # float32, little-endian, L2-normalised
    text_sha256 = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["product", "model_name"], condition=models.Q(tool=None), name="embedding_product_unique"
            ),
            models.UniqueConstraint(fields=["tool", "model_name"], name="embedding_tool_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} embedding of {self.tool or self.product}"
