"""TLS verification, a custom CA, mTLS and a proxy on 127.0.0.1; static auth against httpbin."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from aiohttp import web
from auth_test_servers import FAST, api_request

from airflow_provider_journey.endpoint import EndpointSettings
from airflow_provider_journey.engine import CallPolicy, Sender
from airflow_provider_journey.exceptions import EndpointConfigError
from airflow_provider_journey.types import Outcome, OutcomeStatus, PreparedRequest


def settings_for(url: str, **extra: Any) -> EndpointSettings:
    login = extra.pop("login", None)
    password = extra.pop("password", None)
    return EndpointSettings.from_connection_fields(
        f"tls_{uuid.uuid4().hex[:8]}", host=url, login=login, password=password, extra=extra
    )


def send(
    settings: EndpointSettings, request: PreparedRequest, policy: CallPolicy = FAST
) -> Outcome:
    async def run() -> Outcome:
        async with Sender(settings, "notify", policy) as sender:
            return await sender.send(request)

    return asyncio.run(run())


def request(method: str = "GET", path: str = "/api", **fields: Any) -> PreparedRequest:
    return PreparedRequest(
        profile_id="p1",
        method=method,
        path=path,
        headers=fields.get("headers", {}),
        query=fields.get("query", ()),
        body=fields.get("body"),
        idempotency_key="key-p1",
    )


class HttpsServer:
    """An aiohttp server on 127.0.0.1 behind TLS, run in a thread, answering {"ok": true}."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HttpsServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *args: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"ok": True, "url": str(request.url)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", ok)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_server(ca: trustme.CA) -> Iterator[HttpsServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    with HttpsServer(context) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(ca: trustme.CA) -> Iterator[HttpsServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    with HttpsServer(context) as server:
        yield server


def ca_pem(ca: trustme.CA) -> str:
    return ca.cert_pem.bytes().decode()


def client_pems(ca: trustme.CA) -> dict[str, str]:
    client = ca.issue_cert("journey-client@example.com")
    return {
        "client_cert": client.cert_chain_pems[0].bytes().decode(),
        "client_key": client.private_key_pem.bytes().decode(),
    }


NO_RETRY = CallPolicy(max_retries=0)


def test_untrusted_server_certificate_fails(https_server: HttpsServer) -> None:
    outcome = send(settings_for(https_server.url), request(), NO_RETRY)

    assert outcome.status is OutcomeStatus.FAILED
    assert "TLS handshake" in (outcome.error or "")


def test_custom_ca_bundle_trusts_server(https_server: HttpsServer, ca: trustme.CA) -> None:
    outcome = send(settings_for(https_server.url, ca_bundle=ca_pem(ca)), request())

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_verification_off_warns(https_server: HttpsServer, caplog: Any) -> None:
    caplog.set_level(logging.WARNING)

    outcome = send(settings_for(https_server.url, verify_ssl="false"), request())

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert "verification is off" in caplog.text


def test_mtls_without_client_certificate_fails(mtls_server: HttpsServer, ca: trustme.CA) -> None:
    outcome = send(settings_for(mtls_server.url, ca_bundle=ca_pem(ca)), request(), NO_RETRY)

    assert outcome.status is OutcomeStatus.FAILED


def test_mtls_with_client_certificate_succeeds(mtls_server: HttpsServer, ca: trustme.CA) -> None:
    settings = settings_for(mtls_server.url, ca_bundle=ca_pem(ca), **client_pems(ca))

    outcome = send(settings, request())

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_mismatched_client_key_names_fields(mtls_server: HttpsServer, ca: trustme.CA) -> None:
    pems = client_pems(ca)
    pems["client_key"] = client_pems(ca)["client_key"]
    settings = settings_for(mtls_server.url, ca_bundle=ca_pem(ca), **pems)

    with pytest.raises(EndpointConfigError) as caught:
        send(settings, request())

    assert "'client_cert' and 'client_key'" in str(caught.value)


def test_unreadable_ca_bundle_names_field(https_server: HttpsServer) -> None:
    broken = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    settings = settings_for(https_server.url, ca_bundle=broken)

    with pytest.raises(EndpointConfigError) as caught:
        send(settings, request())

    assert "extra 'ca_bundle'" in str(caught.value)


def test_calls_go_through_proxy() -> None:
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.url} {request.headers.get('Proxy-Authorization')}")
        return web.json_response({"via": "proxy"})

    async def run() -> Outcome:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", proxy)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        proxy_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        settings = settings_for(
            "http://127.0.0.1:9/base",
            proxy_url=proxy_url,
            proxy_login="user",
            proxy_password="proxy-pw-123",
        )
        try:
            async with Sender(settings, "notify", FAST) as sender:
                return await sender.send(api_request())
        finally:
            await runner.cleanup()

    outcome = asyncio.run(run())

    assert outcome.status is OutcomeStatus.SUCCEEDED
    assert seen[0].startswith("GET http://127.0.0.1:9/base/api Basic ")


# httpbin, served locally


@pytest.fixture(scope="module")
def httpbin_url() -> Iterator[str]:
    from httpbin import app as httpbin_app
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, httpbin_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def test_httpbin_basic_auth_accepted(httpbin_url: str) -> None:
    settings = settings_for(
        httpbin_url, auth_type="basic", login="journey", password="basic-pw-123"
    )

    outcome = send(settings, request(path="/basic-auth/journey/basic-pw-123"))

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_httpbin_basic_auth_wrong_password_401(httpbin_url: str) -> None:
    settings = settings_for(httpbin_url, auth_type="basic", login="journey", password="wrong-pw-1")

    outcome = send(settings, request(path="/basic-auth/journey/basic-pw-123"))

    assert outcome.status_code == "http_401"


def test_httpbin_bearer_accepted(httpbin_url: str) -> None:
    settings = settings_for(httpbin_url, auth_type="bearer", password="bearer-tok-123")

    outcome = send(settings, request(path="/bearer"))

    assert outcome.status is OutcomeStatus.SUCCEEDED


def test_httpbin_api_key_header_echoed(httpbin_url: str) -> None:
    settings = settings_for(
        httpbin_url, auth_type="api_key", password="key-0123456789", api_key_name="X-Api-Key"
    )
    policy = CallPolicy(keep_response_fields=("headers.X-Api-Key",))

    outcome = send(settings, request(path="/headers"), policy)

    # httpbin returns the key it received; the kept field is redacted in the outcome.
    assert outcome.response == {"headers.X-Api-Key": "***"}


def test_httpbin_api_key_query_echoed(httpbin_url: str) -> None:
    settings = settings_for(
        httpbin_url,
        auth_type="api_key",
        password="key/0123+456789",
        api_key_name="key",
        api_key_in="query",
    )
    policy = CallPolicy(keep_response_fields=("args.key",))

    outcome = send(settings, request(path="/get", query=(("q", "1"),)), policy)

    # httpbin returns the key it received; the kept field is redacted in the outcome.
    assert outcome.response == {"args.key": "***"}


def test_httpbin_get_follows_redirects(httpbin_url: str) -> None:
    outcome = send(settings_for(httpbin_url), request(path="/redirect/2"))

    assert outcome.status_code == "http_200"


def test_httpbin_post_redirect_not_followed(httpbin_url: str) -> None:
    post = request("POST", "/redirect-to", query=(("url", "/post"),), body=json.dumps({}).encode())

    outcome = send(settings_for(httpbin_url), post)

    assert outcome.status_code == "http_302"


def test_httpbin_500_retried_then_failed(httpbin_url: str) -> None:
    outcome = send(
        settings_for(httpbin_url),
        request(path="/status/500"),
        CallPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.02),
    )

    assert outcome.status_code == "http_500"
    assert outcome.attempts == 3
