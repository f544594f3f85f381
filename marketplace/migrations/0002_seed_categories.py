from __future__ import annotations

from django.db import migrations

CATEGORIES = [
    ("ai-models", "AI models"),
    ("agents", "Agents"),
    ("data", "Data and analytics"),
    ("developer-tools", "Developer tools"),
    ("search", "Search and knowledge"),
    ("productivity", "Productivity"),
    ("communication", "Communication"),
    ("finance", "Finance and payments"),
    ("media", "Media: images, audio, video"),
    ("security", "Security"),
    ("other", "Other"),
]


def seed(apps, schema_editor):
    Category = apps.get_model("marketplace", "Category")
    for slug, name in CATEGORIES:
        Category.objects.get_or_create(slug=slug, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("marketplace", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
