"""Authentication of calls to an endpoint, from the endpoint connection's settings.

Static modes (none, basic, bearer, api_key) live in ``static``; the token endpoint
mode, with its per-connection cache, in ``token``. ``make_authenticator`` picks one.
"""

# base comes first: engine.response imports redact from this package while token
# imports engine.response.
from airflow_provider_journey.engine.auth.base import (
    REDACTED,
    AuthenticationError,
    Authenticator,
    add_secret_observer,
    announce_secret,
    redact,
    redact_document,
    secret_forms,
)
from airflow_provider_journey.engine.auth.factory import make_authenticator
from airflow_provider_journey.engine.auth.static import NoAuth, StaticHeaderAuth, StaticQueryAuth
from airflow_provider_journey.engine.auth.token import (
    TokenCache,
    TokenEndpointAuth,
    token_cache_for,
)

__all__ = [
    "REDACTED",
    "AuthenticationError",
    "Authenticator",
    "NoAuth",
    "StaticHeaderAuth",
    "StaticQueryAuth",
    "TokenCache",
    "TokenEndpointAuth",
    "add_secret_observer",
    "announce_secret",
    "make_authenticator",
    "redact",
    "redact_document",
    "secret_forms",
    "token_cache_for",
]
