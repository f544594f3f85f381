"""Guardrail policies: rules the gateway applies to requests and responses.

A policy holds rules (keyword and regex blocklists, PII detectors, prompt-injection
heuristics, a maximum prompt size); each rule blocks, redacts or only logs what it finds.
A policy applies where it is attached: to products, plans or routes. Detection itself is
pure Python in gateway_sync.guardrail_rules, shared with the workers.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from consumers.models import Plan
from gateway_sync.guardrail_rules import pattern_problem
from gateway_sync.models_routes import Route
from marketplace.models import Product, no_nul

MAX_WORDS = 500
MAX_WORD_CHARS = 200


class GuardrailPolicy(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[no_nul])
    description = models.TextField(blank=True, max_length=2_000, validators=[no_nul])
    enabled = models.BooleanField(default=True)
    products = models.ManyToManyField(Product, blank=True, related_name="guardrail_policies")
    plans = models.ManyToManyField(Plan, blank=True, related_name="guardrail_policies")
    routes = models.ManyToManyField(Route, blank=True, related_name="guardrail_policies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "guardrail policies"

    def __str__(self) -> str:
        return self.name


class GuardrailRule(models.Model):
    # The kinds and actions of the snapshot contract (GuardrailKind, GuardrailAction).
    class Kind(models.TextChoices):
        KEYWORD = "keyword", "Keyword blocklist"
        REGEX = "regex", "Regular expression"
        PII_EMAIL = "pii_email", "PII: email addresses"
        PII_PHONE = "pii_phone", "PII: phone numbers"
        PII_CREDIT_CARD = "pii_credit_card", "PII: payment card numbers (Luhn-checked)"
        PII_IBAN = "pii_iban", "PII: IBANs (mod-97-checked)"
        PII_CUSTOM = "pii_custom", "PII: an ID pattern of your own"
        PROMPT_INJECTION = "prompt_injection", "Prompt-injection heuristics"
        MAX_PROMPT_CHARS = "max_prompt_chars", "Maximum prompt size"

    class Action(models.TextChoices):
        BLOCK = "block", "Block"
        REDACT = "redact", "Redact"
        LOG = "log", "Log only"

    PATTERN_KINDS = (Kind.REGEX, Kind.PII_CUSTOM)

    policy = models.ForeignKey(GuardrailPolicy, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BLOCK)
    on_request = models.BooleanField(default=True)
    on_response = models.BooleanField(default=False)
    words = models.JSONField(
        default=list, blank=True, help_text="Keyword rules: the words or phrases; injection rules: extra phrases."
    )
    pattern = models.CharField(max_length=500, blank=True, help_text="A Python regular expression.")
    max_chars = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(10_000_000)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_action_display().lower()})"

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        kind = self.kind
        if not (self.on_request or self.on_response):
            errors["on_request"] = "Apply the rule to requests, responses or both."
        self._clean_words(errors)
        if kind in self.PATTERN_KINDS:
            problem = pattern_problem(self.pattern) if self.pattern else "Give the pattern to look for."
            if problem:
                errors["pattern"] = problem
        elif self.pattern:
            errors["pattern"] = f"{self.get_kind_display()} rules take no pattern."
        if kind == self.Kind.MAX_PROMPT_CHARS:
            if self.max_chars is None:
                errors["max_chars"] = "Give the largest prompt allowed, in characters."
            if self.action == self.Action.REDACT:
                errors["action"] = "A prompt that is too large can be blocked or logged, not redacted."
            if self.on_response:
                errors["on_response"] = "The prompt size limit applies to requests only."
        elif self.max_chars is not None:
            errors["max_chars"] = "Only prompt size rules take a maximum size."
        if errors:
            raise ValidationError(errors)

    def _clean_words(self, errors: dict[str, str]) -> None:
        words = self.words
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            errors["words"] = "Give the words as a list of text."
            return
        self.words = list(dict.fromkeys(w.strip() for w in words if w.strip()))
        if self.kind == self.Kind.KEYWORD and not self.words:
            errors["words"] = "List the words or phrases to look for."
        elif self.words and self.kind not in (self.Kind.KEYWORD, self.Kind.PROMPT_INJECTION):
            errors["words"] = f"{self.get_kind_display()} rules take no words."
        elif len(self.words) > MAX_WORDS:
            errors["words"] = f"At most {MAX_WORDS} words or phrases."
        elif any(len(w) > MAX_WORD_CHARS or "\x00" in w for w in self.words):
            errors["words"] = f"Each word or phrase is at most {MAX_WORD_CHARS} characters."
