from django.urls import path

from . import views

app_name = "backtests"

urlpatterns = [
    path("", views.backtest_list, name="list"),
    path("new/", views.backtest_new, name="new"),
    path("compare/", views.backtest_compare, name="compare"),
    path("optimise/", views.optimisation_new, name="optimise"),
    path("optimise/count/", views.optimisation_count, name="optimise-count"),
    path("optimisations/<uuid:pk>/", views.optimisation_detail, name="optimisation"),
    path("<uuid:pk>/", views.backtest_detail, name="detail"),
    path("<uuid:pk>/create-bot/", views.create_bot, name="create-bot"),
    path("<uuid:pk>/apply/", views.apply_to_bot, name="apply"),
]
