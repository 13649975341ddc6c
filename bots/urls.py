from django.urls import path

from . import views

app_name = "bots"

urlpatterns = [
    path("", views.bot_list, name="list"),
    path("new/", views.bot_create, name="create"),
    path("validate/", views.validate_field, name="validate"),
    path("<uuid:pk>/", views.bot_detail, name="detail"),
    path("<uuid:pk>/edit/", views.bot_edit, name="edit"),
    path("<uuid:pk>/validate/", views.validate_field, name="validate-existing"),
    path("<uuid:pk>/delete/", views.bot_delete, name="delete"),
    path("<uuid:pk>/start/", views.bot_action, {"action": "start"}, name="start"),
    path("<uuid:pk>/pause/", views.bot_action, {"action": "pause"}, name="pause"),
    path("<uuid:pk>/stop/", views.bot_action, {"action": "stop"}, name="stop"),
]
