from __future__ import annotations

from django.db import migrations


def create_default_plans(apps, schema_editor):
    """Products created before plans existed get their default free plan."""
    Product = apps.get_model("marketplace", "Product")
    Plan = apps.get_model("consumers", "Plan")
    for product in Product.objects.exclude(plans__is_default=True):
        Plan.objects.create(product=product, name="Free", price_label="Free", is_default=True,
                            description="The default plan.")


class Migration(migrations.Migration):
    dependencies = [("consumers", "0001_initial"), ("marketplace", "0003_tool_names_creators_nul")]
    operations = [migrations.RunPython(create_default_plans, migrations.RunPython.noop)]
