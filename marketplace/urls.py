from __future__ import annotations

from django.urls import path

from marketplace import views

urlpatterns = [path("", views.provider_home, name="provider_home")]
