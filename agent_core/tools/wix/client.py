"""The HTTP client of the Wix tools: one pooled connection to Wix's REST API, the headers it
wants, retries of reads (429 honouring `Retry-After`, 5xx, timeouts, refused connections)
within the tool's time, and Wix's errors worded as sentences; a creation is sent once.
See the package docstring for the requests and answers."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import httpx2

from agent_core.tools.registry import (
    ToolContext,
    ToolError,
    ToolInputError,
)

if TYPE_CHECKING:
    from agent_core.config import Settings

DEFAULT_BASE_URL = "https://www.wixapis.com"
PRODUCTS_QUERY = "/stores/v1/products/query"
ORDERS_SEARCH = "/ecom/v1/orders/search"
COUPONS = "/stores/v2/coupons"

MAX_RESULTS = 100  # Wix's page size limit for both searches
READ_ATTEMPTS = 4
READ_BACKOFF_S = (0.5, 1.0, 2.0)
READ_ATTEMPT_TIMEOUT_S = 5.0  # one read attempt; what is left of the tool's time goes to retries
TIME_MARGIN_S = 0.5  # a request ends this long before the tool's deadline: the tool says why
MIN_ATTEMPT_S = 0.2  # not worth starting a request with less time than this
USER_AGENT = "agent-runtime (wix tools)"


# --- the HTTP client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    """What one request gave: a response, or the reason there was none."""

    response: httpx2.Response | None = None
    failure: str | None = None
    reached: bool = True  # False when the request certainly never left (connection refused)


class WixClient:
    """Wix's REST API on one pooled HTTP client, created on first use and shared by the tools'
    threads. Times are the caller's: each request is bounded by the tool's remaining time."""

    def __init__(
        self,
        *,
        api_key: str | None,
        site_id: str | None,
        base_url: str = DEFAULT_BASE_URL,
        read_attempt_timeout_s: float = READ_ATTEMPT_TIMEOUT_S,
    ) -> None:
        self.api_key = api_key or None
        self.site_id = site_id or None
        self.base_url = base_url.rstrip("/")
        self.read_attempt_timeout_s = read_attempt_timeout_s
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> WixClient:
        key = settings.wix_api_key
        return cls(
            api_key=key.get_secret_value() if key else None,
            site_id=settings.wix_site_id,
            base_url=settings.wix_api_base_url,
        )

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # requests --------------------------------------------------------------------------------

    def read(self, path: str, body: dict[str, Any], context: ToolContext, *, what: str) -> Any:
        """POST a query; 429, 5xx, timeouts and refused connections are tried again while the
        tool has time (a 429 waits what Retry-After asks). `what` names the permission."""
        self._check_configured()
        attempts = 0
        while True:
            attempts += 1
            budget = min(context.remaining() - TIME_MARGIN_S, self.read_attempt_timeout_s)
            attempt = self._post(path, body, timeout_s=budget)
            wait = READ_BACKOFF_S[min(attempts, len(READ_BACKOFF_S)) - 1]
            if attempt.response is not None:
                response = attempt.response
                if response.is_success:
                    found = self.document(response)
                    if not isinstance(found, dict):
                        raise ToolError(f"Wix answered {path} with an unexpected document")
                    return found
                if not _retryable(response.status_code):
                    raise self.refusal(response, path, what)
                asked = retry_after_s(response.headers.get("Retry-After"))
                failure = unavailable_sentence(response, asked, self.api_key)
                wait = asked if asked is not None else wait
            else:
                failure = attempt.failure or "no answer"
            left = context.remaining() - TIME_MARGIN_S
            if attempts >= READ_ATTEMPTS:
                raise ToolError(f"{failure}; gave up after {attempts} attempts")
            if wait + MIN_ATTEMPT_S > left:
                raise ToolError(
                    f"{failure}; gave up after {attempts} attempt(s): waiting {wait:g} s "
                    f"more does not fit in the {max(0.0, left):.1f} s this call has left"
                )
            _sleep(context, wait)

    def create(self, path: str, body: dict[str, Any], context: ToolContext) -> _Attempt:
        """POST once, with all the time the tool has left; never repeated."""
        self._check_configured()
        return self._post(path, body, timeout_s=context.remaining() - TIME_MARGIN_S)

    def _post(self, path: str, body: dict[str, Any], *, timeout_s: float) -> _Attempt:
        if timeout_s < MIN_ATTEMPT_S:
            return _Attempt(failure="no time was left for the request to Wix", reached=False)
        try:
            response = self._http().post(path, json=body, timeout=timeout_s)
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            return _Attempt(
                failure=f"could not reach Wix at {self.base_url}: {_reason(exc)}", reached=False
            )
        except httpx2.TimeoutException:
            return _Attempt(failure=f"Wix did not answer within {timeout_s:.1f} s")
        except httpx2.TransportError as exc:
            return _Attempt(failure=f"the connection to Wix failed: {_reason(exc)}")
        return _Attempt(response=response)

    def _http(self) -> httpx2.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx2.Client(
                    base_url=self.base_url,
                    headers={
                        "Authorization": self.api_key or "",
                        "wix-site-id": self.site_id or "",
                        "User-Agent": USER_AGENT,
                        "Accept": "application/json",
                    },
                    follow_redirects=False,  # the API key goes to Wix's address only
                    limits=httpx2.Limits(max_connections=20, max_keepalive_connections=5),
                )
            return self._client

    def problem(self) -> str | None:
        """Why no request can be sent as configured (the settings to set), or None."""
        missing = [
            name
            for name, value in (("WIX_API_KEY", self.api_key), ("WIX_SITE_ID", self.site_id))
            if not value
        ]
        return f"Wix is not configured: set {' and '.join(missing)}" if missing else None

    def _check_configured(self) -> None:
        problem = self.problem()
        if problem:
            raise ToolError(problem)

    def document(self, response: httpx2.Response) -> Any:
        """The JSON document of a successful answer."""
        try:
            return response.json()
        except ValueError:
            raise ToolError(
                f"Wix answered HTTP {response.status_code} with something that is not JSON: "
                f"{_excerpt(response.text, self.api_key)}"
            ) from None

    def refusal(self, response: httpx2.Response, path: str, what: str) -> ToolError:
        """A 4xx answer other than 429, in a sentence that says what to change."""
        status = response.status_code
        said = wix_said(response, self.api_key)
        if status == 401:
            return ToolError(
                f"Wix refused the API key (HTTP 401): set WIX_API_KEY to a valid API key from "
                f"the Wix API Keys Manager, and WIX_SITE_ID to the site's ID{said}"
            )
        if status == 403:
            return ToolError(
                f"Wix denied access (HTTP 403): the API key in WIX_API_KEY lacks the permission "
                f"to {what} on the site set in WIX_SITE_ID; grant it in the Wix API Keys "
                f"Manager{said}"
            )
        if status == 404:
            return ToolError(
                f"Wix answered 404 Not Found for {path}: check WIX_SITE_ID (and "
                f"WIX_API_BASE_URL, {self.base_url}), and that the site has Wix Stores{said}"
            )
        return ToolInputError(f"Wix refused the request (HTTP {status}){said}")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def unavailable_sentence(response: httpx2.Response, asked: float | None, secret: str | None) -> str:
    status = response.status_code
    if status == 429:
        wait = f"; it asks to wait {asked:g} s" if asked is not None else ""
        return f"Wix is rate limiting requests (HTTP 429){wait}"
    return f"Wix had a server error (HTTP {status}){wix_said(response, secret)}"


def wix_said(response: httpx2.Response, secret: str | None) -> str:
    """Wix's own words about an error, from its standard error shape; '' when it gave none."""
    try:
        document = response.json()
    except ValueError:
        text = _excerpt(response.text, secret)
        return f". Wix said: {text}" if text else ""
    if not isinstance(document, dict):
        return ""
    parts: list[str] = []
    message = document.get("message")
    if isinstance(message, str) and message.strip():
        parts.append(message.strip())
    details = document.get("details")
    application = details.get("applicationError") if isinstance(details, dict) else None
    if isinstance(application, dict):
        code, description = application.get("code"), application.get("description")
        extra = ": ".join(str(x) for x in (code, description) if x and str(x) not in parts)
        if extra:
            parts.append(f"({extra})")
    validation = details.get("validationError") if isinstance(details, dict) else None
    if isinstance(validation, dict):
        for violation in validation.get("fieldViolations") or []:
            if isinstance(violation, dict):
                parts.append(f"{violation.get('field')}: {violation.get('description')}")
    text = _excerpt(" ".join(parts), secret)
    return f". Wix said: {text}" if text else ""


def _excerpt(text: str, secret: str | None, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def retry_after_s(value: str | None) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _sleep(context: ToolContext, seconds: float) -> None:
    """Wait, but stop at once if the tool's time runs out meanwhile."""
    woken = threading.Event()
    context.on_cancel(woken.set)
    woken.wait(seconds)
    if context.cancelled:
        raise ToolError("stopped: the tool's time ran out")
