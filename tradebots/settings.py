"""Settings for TradeBots.

Every knob comes from the environment (documented in .env.example); this module is the one place
that reads it. Defaults give the embedded set-up: SQLite under var/, Redis on localhost, the
built-in paper exchange, DEBUG off.
"""

import os
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TRADEBOTS_VAR_DIR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """The variable's value; unset and empty (as a copied .env.example has it) mean default."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def _env_parsed(name: str, default, parse, what: str):
    raw = env_str(name)
    if not raw:
        return default
    try:
        return parse(raw)
    except (ValueError, InvalidOperation):
        raise ImproperlyConfigured(f"{name} must be {what}, not {raw!r}") from None


def env_int(name: str, default: int) -> int:
    return _env_parsed(name, default, int, "a whole number")


def env_float(name: str, default: float) -> float:
    return _env_parsed(name, default, float, "a number")


def env_decimal(name: str, default: str) -> Decimal:
    return _env_parsed(name, Decimal(default), Decimal, "a decimal number")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def _local_secret_key() -> str:
    # Local runs only: generated once and kept out of the repository (var/ is ignored).
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(get_random_secret_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
# Other origins whose forms and WebSockets are accepted (the site's own origin always is).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Behind an HTTPS terminating proxy: HTTPS=true turns on every transport-security setting.
HTTPS = env_bool("HTTPS", False)
if not env_str("SECRET_KEY") and HTTPS and not DEBUG:
    # A key generated into var/ differs per machine and container and is lost with them:
    # sessions, password reset links and signed values would break in production.
    raise ImproperlyConfigured(
        "SECRET_KEY must be set in production (HTTPS=true, DEBUG=false): e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()
SECURE_SSL_REDIRECT = HTTPS
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if env_bool("TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Not "daphne": the web process is daphne itself (Procfile, `make run`); as an app it only swaps
# in its runserver and would load twisted into every Celery worker (~30 MB each).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    # Named partials ("trading/trades.html#trade-row"), rendered alone by the template loader.
    "template_partials",
    "channels",
    # django-ninja: the JSON API; as an app, /api/docs serves its vendored Swagger UI files.
    "ninja",
    "tradebots",
    "accounts",
    "bots",
    "trading",
    "tradebots.broker.paper",
    "reconciliation",
    "backtests",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tradebots.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "tradebots.middleware.CoalescedLiveUpdatesMiddleware",
    "tradebots.middleware.InteractiveBrokerMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tradebots.urls"
# Request bodies beyond this are refused with 413 (forms and API documents are a few KB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
ASGI_APPLICATION = "tradebots.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tradebots.navigation.main_navigation",
                "tradebots.permissions.roles",
            ],
        },
    },
]

# SQLite (the embedded default) is tuned so daphne and the Celery processes can write concurrently:
# WAL lets readers run beside a writer, IMMEDIATE takes the write lock at BEGIN (no upgrade
# deadlocks), busy_timeout makes a second writer wait instead of failing.
SQLITE_PATH = Path(env_str("SQLITE_PATH") or VAR_DIR / "db.sqlite3")
DATABASE_URL = env_str("DATABASE_URL")
# PostgreSQL: psycopg's connection pool, one per process, at most DATABASE_POOL_MAX_SIZE
# connections each. daphne runs every request's sync code on a thread of its own, so persistent
# connections (CONN_MAX_AGE) would be left open by threads that never come back; with the pool a
# request hands its connection back when it ends. Celery's prefork workers close their pool after
# every task (Celery's Django fix-up), so a worker process holds connections only while it runs one.
DATABASE_POOL_MIN_SIZE = env_int("DATABASE_POOL_MIN_SIZE", 1)
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 10)
# Seconds a request waits for a free pooled connection before failing.
DATABASE_POOL_TIMEOUT_SECONDS = env_float("DATABASE_POOL_TIMEOUT_SECONDS", 10.0)
if not 0 <= DATABASE_POOL_MIN_SIZE <= DATABASE_POOL_MAX_SIZE or DATABASE_POOL_MAX_SIZE < 1:
    raise ImproperlyConfigured(
        "DATABASE_POOL_MAX_SIZE must be at least 1 and at least DATABASE_POOL_MIN_SIZE (0 or more)."
    )
if DATABASE_URL:
    # Pooled connections may have died with a database restart: each is checked when taken.
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": DATABASE_POOL_MIN_SIZE,
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": DATABASE_POOL_TIMEOUT_SECONDS,
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=20000; PRAGMA synchronous=NORMAL;"
                ),
            },
            # A file, not :memory:, so a daphne process started by the browser tests shares it.
            "TEST": {"NAME": VAR_DIR / "test_db.sqlite3"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _running_apps_redis() -> str:
    """The embedded Redis of a running ``make run`` (tradebots.run_with_redis publishes it), so
    a management command from another shell reaches the app's Redis, not another one."""
    try:
        url, pid = (VAR_DIR / "embedded-redis").read_text().split()
        os.kill(int(pid), 0)  # still running?
    except (OSError, ValueError):
        return ""
    return url


REDIS_URL = env_str("REDIS_URL") or _running_apps_redis() or "redis://127.0.0.1:6379/0"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "tradebots",
        "OPTIONS": {
            "socket_connect_timeout": 2,
            "socket_timeout": 2,
            "pool_class": "tradebots.redis_client.ProcessConnectionPool",
        },
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "tradebots.channel_layer.BoundedRedisChannelLayer",
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, which races channels_redis's
            # 5 s blocking pop on an idle socket and kills the consumer; wait longer than that.
            # A burst beyond max_connections waits up to `timeout` s for a free connection.
            "hosts": [
                {
                    "address": REDIS_URL,
                    "socket_timeout": 15,
                    "max_connections": env_int("CHANNEL_LAYER_MAX_CONNECTIONS", 50),
                    "timeout": 10,
                }
            ],
            "prefix": "tradebots",
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

ENGINE_TICK_SECONDS = env_int("ENGINE_TICK_SECONDS", 60)
# Open positions are valued at the broker's latest prices and pushed to the Positions pages this
# often (one broker call; at least once per engine tick).
POSITION_VALUES_SECONDS = env_int("POSITION_VALUES_SECONDS", 15)
# The account's value is kept this often (one broker call) for the dashboard's chart, this long.
EQUITY_SNAPSHOT_MINUTES = env_int("EQUITY_SNAPSHOT_MINUTES", 5)
EQUITY_KEEP_DAYS = env_int("EQUITY_KEEP_DAYS", 365)
RECONCILE_EVERY_MINUTES = env_int("RECONCILE_EVERY_MINUTES", 15)
# Reconciliation runs older than this are deleted after each scheduled run.
RECONCILE_KEEP_DAYS = env_int("RECONCILE_KEEP_DAYS", 90)
HEARTBEAT_SECONDS = env_int("HEARTBEAT_SECONDS", 15)
ORDER_SYNC_SECONDS = env_int("ORDER_SYNC_SECONDS", 30)
# After submitting: wait this long, then re-check up to ORDER_VERIFY_RETRIES times as far apart.
ORDER_VERIFY_DELAY_SECONDS = env_float("ORDER_VERIFY_DELAY_SECONDS", 1.0)
ORDER_VERIFY_RETRIES = env_int("ORDER_VERIFY_RETRIES", 3)
# An intent the broker never received is sent late only within this window, else abandoned.
ORDER_INTENT_TTL_SECONDS = env_int("ORDER_INTENT_TTL_SECONDS", 120)
# An order still unfilled this long after it was sent is canceled at the broker (what filled is
# booked); until then its bot places no other order.
ORDER_STALE_SECONDS = env_int("ORDER_STALE_SECONDS", 300)
# The dashboard's account figures are refreshed (one broker call) at most this often on fills.
ACCOUNT_REFRESH_SECONDS = env_float("ACCOUNT_REFRESH_SECONDS", 3.0)
# Consecutive order rejections after which the engine puts a bot in error.
ENGINE_MAX_REJECTIONS = env_int("ENGINE_MAX_REJECTIONS", 3)
# Symbols per market-data request and per Celery task.
ENGINE_BATCH_SYMBOLS = env_int("ENGINE_BATCH_SYMBOLS", 100)

CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "tradebots.tasks.record_heartbeat",
        "schedule": HEARTBEAT_SECONDS,
        "options": {"expires": HEARTBEAT_SECONDS},
    },
    # A tick that could not start within its own interval is dropped, not queued up behind.
    "engine-tick": {
        "task": "trading.tasks.engine_tick",
        "schedule": ENGINE_TICK_SECONDS,
        "options": {"expires": ENGINE_TICK_SECONDS},
    },
    "snapshot-equity": {
        "task": "accounts.tasks.snapshot_equity",
        "schedule": EQUITY_SNAPSHOT_MINUTES * 60,
        "options": {"expires": EQUITY_SNAPSHOT_MINUTES * 60},
    },
    "push-position-values": {
        "task": "trading.tasks.push_position_values",
        "schedule": POSITION_VALUES_SECONDS,
        "options": {"expires": POSITION_VALUES_SECONDS},
    },
    "sync-open-orders": {
        "task": "trading.tasks.sync_open_orders",
        "schedule": ORDER_SYNC_SECONDS,
        "options": {"expires": ORDER_SYNC_SECONDS},
    },
    "reconcile": {
        "task": "reconciliation.tasks.reconcile",
        "schedule": RECONCILE_EVERY_MINUTES * 60,
        "options": {"expires": RECONCILE_EVERY_MINUTES * 60},
    },
    "fail-abandoned-backtests": {
        "task": "backtests.tasks.fail_abandoned_runs",
        "schedule": 600,
        "options": {"expires": 600},
    },
}

# Broker. No keys: the built-in paper exchange.
ALPACA_API_KEY = env_str("ALPACA_API_KEY")
ALPACA_SECRET_KEY = env_str("ALPACA_SECRET_KEY")
ALPACA_PAPER = env_bool("ALPACA_PAPER", True)
ALPACA_BASE_URL = env_str("ALPACA_BASE_URL").rstrip("/") or None
ALPACA_DATA_URL = env_str("ALPACA_DATA_URL").rstrip("/") or None
ALPACA_DATA_FEED = env_str("ALPACA_DATA_FEED", "iex")
# Seconds before a call to Alpaca is abandoned (alpaca-py itself sets no timeout at all).
ALPACA_CONNECT_TIMEOUT_SECONDS = env_float("ALPACA_CONNECT_TIMEOUT_SECONDS", 5.0)
ALPACA_READ_TIMEOUT_SECONDS = env_float("ALPACA_READ_TIMEOUT_SECONDS", 15.0)
# alpaca-py's own wait between its retries of a 429 or 504.
ALPACA_RETRY_WAIT_SECONDS = env_float("ALPACA_RETRY_WAIT_SECONDS", 3.0)
# Pages and API calls (inside tradebots.broker.interactive()) give up on Alpaca after this long,
# without retrying, so no request waits more than a few seconds on a hung broker.
ALPACA_INTERACTIVE_TIMEOUT_SECONDS = env_float("ALPACA_INTERACTIVE_TIMEOUT_SECONDS", 3.0)
# Alpaca allows 200 requests a minute per account. All processes together send at most
# BROKER_BUDGET_REQUESTS in any BROKER_BUDGET_WINDOW_SECONDS (counted in Redis); new buys leave
# the last BROKER_BUDGET_EXIT_RESERVE of them to exits. A request waits up to
# BROKER_BUDGET_MAX_WAIT_SECONDS for a slot, then fails unsent. The paper exchange is not limited.
BROKER_BUDGET_REQUESTS = env_int("BROKER_BUDGET_REQUESTS", 190)
BROKER_BUDGET_WINDOW_SECONDS = env_float("BROKER_BUDGET_WINDOW_SECONDS", 60.0)
BROKER_BUDGET_EXIT_RESERVE = env_int("BROKER_BUDGET_EXIT_RESERVE", 20)
BROKER_BUDGET_MAX_WAIT_SECONDS = env_float("BROKER_BUDGET_MAX_WAIT_SECONDS", 30.0)
if BROKER_BUDGET_REQUESTS < 1 or BROKER_BUDGET_WINDOW_SECONDS <= 0:
    raise ImproperlyConfigured("BROKER_BUDGET_REQUESTS and _WINDOW_SECONDS must be positive.")
if not 0 <= BROKER_BUDGET_EXIT_RESERVE < BROKER_BUDGET_REQUESTS:
    raise ImproperlyConfigured("BROKER_BUDGET_EXIT_RESERVE must be 0 or more and below the limit.")
if bool(ALPACA_API_KEY) != bool(ALPACA_SECRET_KEY):
    raise ImproperlyConfigured("Set both ALPACA_API_KEY and ALPACA_SECRET_KEY, or neither.")

# Backtests: the longest range accepted, counted in bars of its timeframe (nights included), and
# the most combinations one optimisation grid may run.
BACKTEST_MAX_BARS = env_int("BACKTEST_MAX_BARS", 1_000_000)
OPTIMISATION_MAX_COMBINATIONS = env_int("OPTIMISATION_MAX_COMBINATIONS", 500)

# The built-in paper exchange (used when no Alpaca keys are set).
PAPER_STARTING_CASH = env_decimal("PAPER_STARTING_CASH", "100000")
# Market orders fill this many basis points worse than the synthetic price.
PAPER_SLIPPAGE_BPS = env_decimal("PAPER_SLIPPAGE_BPS", "5")
# false: the paper clock follows NYSE regular hours (Mon-Fri 9:30-16:00 New York, no holidays).
PAPER_MARKET_ALWAYS_OPEN = env_bool("PAPER_MARKET_ALWAYS_OPEN", True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username and address pair is refused before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins of one username from one
# address, that pair is refused, right password or not, for LOGIN_COOLOFF_MINUTES after its last
# attempt. A successful login clears the count. Other users and addresses are unaffected.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_COOLOFF_MINUTES = env_int("LOGIN_COOLOFF_MINUTES", 15)
if LOGIN_FAILURE_LIMIT < 1 or LOGIN_COOLOFF_MINUTES < 1:
    raise ImproperlyConfigured("LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES must be at least 1.")
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns on every start when it is missing
# Served by whitenoise straight from the finders, so no collectstatic step is needed to run.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes says four things at INFO on every login and once per process start; failed
    # logins and lockouts, which it logs as warnings, still show.
    "loggers": {"axes": {"level": "WARNING"}},
}
