from django.urls import path

from . import views

app_name = "trading"

urlpatterns = [
    path("trades/", views.trade_list, name="trades"),
    path("trades/<int:pk>/", views.trade_detail, name="trade-detail"),
    path("positions/", views.position_list, name="positions"),
]
