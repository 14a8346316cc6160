"""``sdk_session``: a real ``FacebookAdsApi`` pointed at a ``FakeGraph``.

It does what DOMAIN.md prescribes: ``FacebookAdsApi.init(..., crash_log=False)``, then
``api._session.GRAPH = fake.base_url`` (the instance attribute; the class default stays
``https://graph.facebook.com``), and restores the previous default API afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeGraph


@contextmanager
def sdk_session(
    fake: FakeGraph,
    *,
    access_token: str | None = "tok",
    app_id: str | None = None,
    app_secret: str | None = None,
    api_version: str | None = None,
    timeout: float = 10,
    set_default: bool = True,
) -> Iterator[Any]:
    """A real ``FacebookAdsApi`` pointed at ``fake``; the previous default API is restored on exit.

    ``set_default=False`` builds ``FacebookAdsApi(FacebookSession(...))`` without touching globals
    (pass ``api=`` to the ad objects then). The session ignores proxy variables (loopback only).
    """
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    saved_api = FacebookAdsApi.get_default_api()
    saved_account = FacebookAdsApi.get_default_account_id()
    version = api_version or fake.version
    if set_default:
        api = FacebookAdsApi.init(
            app_id=app_id,
            app_secret=app_secret,
            access_token=access_token,
            api_version=version,
            timeout=timeout,
            crash_log=False,  # otherwise the SDK installs an excepthook that posts to Meta
        )
    else:
        api = FacebookAdsApi(FacebookSession(app_id, app_secret, access_token, None, timeout), api_version=version)
    session = api._session
    session.GRAPH = fake.base_url  # instance attribute: FacebookSession.GRAPH stays graph.facebook.com
    session.requests.trust_env = False
    try:
        yield api
    finally:
        session.requests.close()
        FacebookAdsApi.set_default_api(saved_api)
        FacebookAdsApi._default_account_id = saved_account
