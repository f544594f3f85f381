from __future__ import annotations

from django.urls import path

from consumers import views

urlpatterns = [path("", views.consumer_home, name="consumer_home")]
