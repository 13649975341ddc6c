from django.urls import path

from . import views

app_name = "trading"

urlpatterns = [
    path("trades/", views.trade_list, name="trades"),
    path("trades/bots/", views.bot_name_options, name="bot-names"),
    path("trades/<int:pk>/", views.trade_detail, name="trade-detail"),
    path("positions/", views.position_list, name="positions"),
    path("positions/<int:pk>/close/", views.close_position, name="close-position"),
    path("unmanaged/<str:symbol>/close/", views.close_unmanaged, name="close-unmanaged"),
    path("emergency-stop/", views.emergency_stop, name="emergency-stop"),
]
