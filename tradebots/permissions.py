"""The two roles: viewers see everything and change nothing; traders (this permission, or a
superuser) create, change, start and stop bots, sell positions and run reconciliation."""

TRADE_PERMISSION = "bots.trade"
TRADERS_GROUP = "Traders"
VIEWERS_GROUP = "Viewers"
REFUSED_MESSAGE = "Your account can view but not trade; ask an administrator for the trader role."


def can_trade(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(TRADE_PERMISSION))
