from __future__ import annotations

from django.urls import path

from gateway_sync import views

urlpatterns = [path("", views.console_home, name="console_home")]
