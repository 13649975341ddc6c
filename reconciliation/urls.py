from django.urls import path

from . import views

app_name = "reconciliation"

urlpatterns = [
    path("", views.run_list, name="runs"),
    path("check/", views.check, name="check"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
]
