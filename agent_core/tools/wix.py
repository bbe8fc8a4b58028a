"""The seed's shop tools over Wix's REST API: wix_search_products and wix_search_orders (read
only, low risk) and wix_create_coupon (a side effect, medium risk).

The requests, as Wix's public API reference gives them (every request carries the headers
`Authorization: <API key>` and `wix-site-id: <site id>`):

- Stores Catalog V1, Query Products: `POST /stores/v1/products/query` with
  `{"query": {"filter": "<the filter as a JSON string>", "paging": {"limit": n, "offset": 0}}}`;
  answers `{"products": [{"id", "name", "sku", "visible", "priceData": {"currency", "price",
  "discountedPrice"}, "stock": {"trackInventory", "quantity", "inStock", "inventoryStatus"}}],
  "metadata": {"items", "offset"}, "totalResults": n}`. `name` takes `$contains`, `price` takes
  `$gte`/`$lte`, `inventoryStatus` (IN_STOCK, OUT_OF_STOCK, PARTIALLY_OUT_OF_STOCK) `$hasSome`.
- eCommerce, Search Orders: `POST /ecom/v1/orders/search` with `{"search": {"filter": {...},
  "sort": [{"fieldName": "createdDate", "order": "DESC"}], "cursorPaging": {"limit": n}}}`;
  answers `{"orders": [{"id", "number", "createdDate", "status", "paymentStatus",
  "fulfillmentStatus", "buyerInfo": {"email"}, "billingInfo": {"contactDetails": {"firstName",
  "lastName"}}, "currency", "priceSummary": {"total": {"amount", "formattedAmount"}},
  "lineItems": [{"productName": {"original"}, "quantity"}]}], "metadata": {"count",
  "hasNext"}}`. A date range is two conditions under `$and` (one object holding both bounds
  is refused with 400).
- Coupons, Create Coupon: `POST /stores/v2/coupons` with `{"specification": {"name", "code",
  "startTime", "expirationTime", "usageLimit", "percentOffRate" | "moneyOffAmount", "scope":
  {"namespace": "stores", "group": {"name": "product"}}, "active": true}}` (times in epoch
  milliseconds; the code, up to 20 characters, must be unique on the site); answers `{"id"}`.

Errors have Wix's standard shape, `{"message", "details": {"applicationError": {"code",
"description"}}}` (or `validationError`). They become sentences the agent (and the admin
reading the run) can act on: what to set for 401 and 403, what to check for 404. Reads retry
429 (waiting what `Retry-After` asks) and 5xx, timeouts and refused connections, within the
tool's time. Creating a coupon is never repeated: a refused connection means nothing was sent;
a timeout, a dropped connection or a 5xx after the request left means the outcome is unknown,
reported as such; and because Wix refuses a code that already exists, creating the same code
again can never make a second coupon.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal

import httpx2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_core.models import RiskLevel
from agent_core.tools.registry import (
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOutcomeUnknown,
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

PaymentStatus = Literal[
    "NOT_PAID",
    "PENDING",
    "PARTIALLY_PAID",
    "PAID",
    "PARTIALLY_REFUNDED",
    "FULLY_REFUNDED",
    "CANCELED",
    "DECLINED",
]
FulfillmentStatus = Literal["NOT_FULFILLED", "PARTIALLY_FULFILLED", "FULFILLED"]
EMAIL = r"^[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[^@\s,;<>\"]+$"
COUPON_CODE = r"^[A-Za-z0-9_-]{1,20}$"


# --- arguments ---------------------------------------------------------------------------------


class ProductSearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, min_length=1, max_length=100, description="text the product name contains"
    )
    min_price: float | None = Field(default=None, ge=0, description="lowest price, inclusive")
    max_price: float | None = Field(default=None, ge=0, description="highest price, inclusive")
    in_stock: bool | None = Field(
        default=None, description="true: only products in stock; false: only products out of stock"
    )
    limit: int = Field(default=10, ge=1, le=MAX_RESULTS, description="how many products at most")

    @model_validator(mode="after")
    def _price_range(self) -> ProductSearchArgs:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError("min_price is above max_price")
        return self


class OrderSearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_status: PaymentStatus | None = None
    fulfillment_status: FulfillmentStatus | None = None
    created_from: date | datetime | None = Field(
        default=None,
        description="orders created on or after this date (2026-11-02) or date-time (UTC if no "
        "offset is given)",
    )
    created_to: date | datetime | None = Field(
        default=None,
        description="orders created up to this date, inclusive, or before this date-time",
    )
    customer_email: str | None = Field(
        default=None, max_length=254, pattern=EMAIL, description="the buyer's email address"
    )
    limit: int = Field(default=10, ge=1, le=MAX_RESULTS, description="how many orders at most")

    @model_validator(mode="after")
    def _date_range(self) -> OrderSearchArgs:
        if (
            self.created_from is not None
            and self.created_to is not None
            and _start_of(self.created_from) >= _end_of(self.created_to)
        ):
            raise ValueError("created_from is not before created_to")
        return self


class CouponArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=COUPON_CODE,
        description="what customers type at checkout: up to 20 letters, digits, - or _; it must "
        "not exist yet on the site",
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=80, description="display name (default: the code)"
    )
    percent_off: float | None = Field(
        default=None, gt=0, le=100, description="discount in percent; or give amount_off"
    )
    amount_off: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="fixed discount in the store's currency; or give percent_off",
    )
    expires_at: date | datetime | None = Field(
        default=None,
        description="last day (2026-12-31, valid through its end, UTC) or exact date-time; "
        "none: never expires",
    )
    usage_limit: int | None = Field(
        default=None, ge=1, le=1_000_000, description="how many times it can be used in total"
    )

    @model_validator(mode="after")
    def _one_discount(self) -> CouponArgs:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("give exactly one of percent_off and amount_off")
        return self


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
                asked = _retry_after_s(response.headers.get("Retry-After"))
                failure = _unavailable(response, asked, self.api_key)
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
        said = _wix_said(response, self.api_key)
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


def _unavailable(response: httpx2.Response, asked: float | None, secret: str | None) -> str:
    status = response.status_code
    if status == 429:
        wait = f"; it asks to wait {asked:g} s" if asked is not None else ""
        return f"Wix is rate limiting requests (HTTP 429){wait}"
    return f"Wix had a server error (HTTP {status}){_wix_said(response, secret)}"


def _wix_said(response: httpx2.Response, secret: str | None) -> str:
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


def _retry_after_s(value: str | None) -> float | None:
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


# --- results -----------------------------------------------------------------------------------


def observed_size(result: Any) -> int:
    """The length of `result` as the agent's observation prints it."""
    return len(json.dumps(result, ensure_ascii=False, indent=1, sort_keys=True))


def fit(result: dict[str, Any], key: str, max_chars: int) -> dict[str, Any]:
    """Drop items from the end of result[key] until the observation fits in max_chars, saying
    how many were left out: a cut in the middle of an item would be of no use to the agent."""
    items = result[key]
    dropped = 0
    while items and observed_size(result) > max_chars:
        items.pop()
        dropped += 1
        result["note"] = (
            f"{dropped} more not shown (the observation limit is {max_chars} characters): "
            "narrow the search or lower limit"
        )
    return result


def _number(value: Any) -> Any:
    """Wix gives eCommerce amounts as strings ("42.5"): numbers are easier to add up."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


def _product(raw: dict[str, Any]) -> dict[str, Any]:
    price = raw.get("priceData") or raw.get("price") or {}
    stock = raw.get("stock") or {}
    item: dict[str, Any] = {
        "id": raw.get("id"),
        "name": raw.get("name"),
        "price": price.get("price"),
        "currency": price.get("currency"),
    }
    discounted = price.get("discountedPrice")
    if discounted is not None and discounted != price.get("price"):
        item["discounted_price"] = discounted
    item["in_stock"] = stock.get("inStock")
    if stock.get("trackInventory") and stock.get("quantity") is not None:
        item["quantity"] = stock["quantity"]
    if raw.get("sku"):
        item["sku"] = raw["sku"]
    if raw.get("visible") is False:
        item["visible"] = False
    return item


def _order(raw: dict[str, Any]) -> dict[str, Any]:
    buyer = raw.get("buyerInfo") or {}
    contact = (raw.get("billingInfo") or {}).get("contactDetails") or {}
    total = (raw.get("priceSummary") or {}).get("total") or {}
    name = " ".join(part for part in (contact.get("firstName"), contact.get("lastName")) if part)
    item: dict[str, Any] = {
        "id": raw.get("id"),
        "number": raw.get("number"),
        "created": raw.get("createdDate"),
        "status": raw.get("status"),
        "payment_status": raw.get("paymentStatus"),
        "fulfillment_status": raw.get("fulfillmentStatus"),
        "customer_email": buyer.get("email"),
    }
    if name:
        item["customer_name"] = name
    item["total"] = _number(total.get("amount"))
    item["currency"] = raw.get("currency")
    lines = raw.get("lineItems") or []
    item["items"] = [
        f"{line.get('quantity', 1)} x {(line.get('productName') or {}).get('original', '?')}"
        for line in lines[:5]
    ]
    if len(lines) > 5:
        item["items"].append(f"and {len(lines) - 5} more")
    return item


# --- dates -------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _start_of(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value, day_time(), tzinfo=UTC)


def _end_of(value: date | datetime) -> datetime:
    """The first moment after `value`: a date includes its whole day."""
    if isinstance(value, datetime):
        return _utc(value)
    return datetime.combine(value + timedelta(days=1), day_time(), tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_ms(moment: datetime) -> int:
    return int(_utc(moment).timestamp() * 1000)


# --- the tools ---------------------------------------------------------------------------------


def wix_tools(
    client: WixClient,
    *,
    max_chars: int = 4000,
    now: Callable[[], datetime] | None = None,
) -> list[Tool]:
    """The three Wix tools over `client`. Results are trimmed to what the agent needs and to
    `max_chars` (AGENT_OBSERVATION_MAX_CHARS); `now` dates a coupon's start."""
    clock = now or (lambda: datetime.now(UTC))

    def wix_search_products(args: ProductSearchArgs, context: ToolContext) -> dict[str, Any]:
        conditions: dict[str, Any] = {}
        if args.name:
            conditions["name"] = {"$contains": args.name}
        price = {
            op: value
            for op, value in (("$gte", args.min_price), ("$lte", args.max_price))
            if value is not None
        }
        if price:
            conditions["price"] = price
        if args.in_stock is True:
            conditions["inventoryStatus"] = {"$hasSome": ["IN_STOCK", "PARTIALLY_OUT_OF_STOCK"]}
        elif args.in_stock is False:
            conditions["inventoryStatus"] = {"$eq": "OUT_OF_STOCK"}
        query: dict[str, Any] = {"paging": {"limit": args.limit, "offset": 0}}
        if conditions:
            query["filter"] = json.dumps(conditions)  # Catalog V1 takes the filter as a string
        found = client.read(PRODUCTS_QUERY, {"query": query}, context, what="read products")
        products = [_product(raw) for raw in found.get("products") or [] if isinstance(raw, dict)]
        result: dict[str, Any] = {"products": products[: args.limit], "count": len(products)}
        if isinstance(found.get("totalResults"), int):
            result["total"] = found["totalResults"]
        return fit(result, "products", max_chars)

    def wix_search_orders(args: OrderSearchArgs, context: ToolContext) -> dict[str, Any]:
        conditions: list[dict[str, Any]] = []
        if args.payment_status:
            conditions.append({"paymentStatus": {"$eq": args.payment_status}})
        if args.fulfillment_status:
            conditions.append({"fulfillmentStatus": {"$eq": args.fulfillment_status}})
        if args.customer_email:
            conditions.append({"buyerInfo.email": {"$eq": args.customer_email}})
        if args.created_from is not None:
            conditions.append({"createdDate": {"$gte": _iso(_start_of(args.created_from))}})
        if args.created_to is not None:
            conditions.append({"createdDate": {"$lt": _iso(_end_of(args.created_to))}})
        search: dict[str, Any] = {
            "sort": [{"fieldName": "createdDate", "order": "DESC"}],
            "cursorPaging": {"limit": args.limit},
        }
        if conditions:
            search["filter"] = conditions[0] if len(conditions) == 1 else {"$and": conditions}
        found = client.read(ORDERS_SEARCH, {"search": search}, context, what="read orders")
        orders = [_order(raw) for raw in found.get("orders") or [] if isinstance(raw, dict)]
        result: dict[str, Any] = {"orders": orders[: args.limit], "count": len(orders)}
        metadata = found.get("metadata") or {}
        if metadata.get("hasNext"):
            result["more"] = True
        return fit(result, "orders", max_chars)

    def wix_create_coupon(args: CouponArgs, context: ToolContext) -> dict[str, Any]:
        started = clock()
        expires = _end_of(args.expires_at) if args.expires_at is not None else None
        if expires is not None and expires <= started:
            raise ToolInputError(f"expires_at {_iso(expires)} is already past")
        specification: dict[str, Any] = {
            "name": args.name or args.code,
            "code": args.code,
            "startTime": _epoch_ms(started),
            "scope": {"namespace": "stores", "group": {"name": "product"}},
            "active": True,
        }
        if args.percent_off is not None:
            specification["percentOffRate"] = args.percent_off
            discount = f"{args.percent_off:g}% off"
        else:
            specification["moneyOffAmount"] = args.amount_off
            discount = f"{args.amount_off:g} off (store currency)"
        if expires is not None:
            specification["expirationTime"] = _epoch_ms(expires)
        if args.usage_limit is not None:
            specification["usageLimit"] = args.usage_limit
        attempt = client.create(COUPONS, {"specification": specification}, context)
        code = args.code
        response = attempt.response
        if response is None:
            if not attempt.reached:
                raise ToolError(
                    f"the coupon {code} was not created: {attempt.failure}. Nothing reached Wix, "
                    "so trying again later cannot make a duplicate"
                )
            raise ToolOutcomeUnknown(_unknown(code, attempt.failure or "no answer"))
        status = response.status_code
        if response.is_success:  # created, even if the answer cannot be read
            try:
                created = response.json()
            except ValueError:
                created = None
            coupon_id = created.get("id") if isinstance(created, dict) else None
            return {
                "created": True,
                "id": coupon_id,
                "code": code,
                "name": specification["name"],
                "discount": discount,
                "applies_to": "all store products",
                "starts": _iso(started),
                "expires": _iso(expires) if expires is not None else None,
                "usage_limit": args.usage_limit,
            }
        if _duplicate(response):
            raise ToolInputError(
                f"a coupon with code {code} already exists on the Wix site: no new coupon was "
                "created. If an earlier attempt to create it had an unknown outcome, that "
                "attempt did create it; otherwise choose another code"
            )
        if status >= 500:
            reason = f"Wix had a server error (HTTP {status})"
            raise ToolOutcomeUnknown(_unknown(code, reason + _wix_said(response, client.api_key)))
        if status == 429:
            asked = _retry_after_s(response.headers.get("Retry-After"))
            raise ToolError(
                f"the coupon {code} was not created: "
                f"{_unavailable(response, asked, client.api_key)}. Try again later"
            )
        refusal = client.refusal(response, COUPONS, "manage coupons")
        raise type(refusal)(f"the coupon {code} was not created: {refusal}")

    return [
        Tool(
            name="wix_search_products",
            description=(
                "Search the Wix store's products by name, price range and stock. Returns each "
                "product's id, name, price, currency and stock."
            ),
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=ProductSearchArgs,
            handler=wix_search_products,
            readiness=client.problem,
        ),
        Tool(
            name="wix_search_orders",
            description=(
                "Search the Wix store's orders, newest first, by payment or fulfillment status, "
                "creation dates and customer email. Returns each order's id, number, date, "
                "statuses, total, customer email and items."
            ),
            risk=RiskLevel.LOW,
            side_effects=False,
            args_model=OrderSearchArgs,
            handler=wix_search_orders,
            readiness=client.problem,
        ),
        Tool(
            name="wix_create_coupon",
            description=(
                "Create a Wix coupon for all store products: a percent or a fixed amount off, "
                "with an optional expiry and usage limit. The code must be new: Wix refuses a "
                "code that already exists."
            ),
            risk=RiskLevel.MEDIUM,
            side_effects=True,
            args_model=CouponArgs,
            handler=wix_create_coupon,
            readiness=client.problem,
        ),
    ]


def _unknown(code: str, cause: str) -> str:
    return (
        f"the coupon {code} may or may not have been created: the request left for Wix, then "
        f"{cause}. It was not sent again. Do not assume either way: calling wix_create_coupon "
        f"again with the code {code} cannot create a second coupon (Wix refuses a code that "
        "already exists), so its answer tells which it was"
    )


_DUPLICATE = re.compile(r"already (exists|in use|taken)|duplicate", re.IGNORECASE)


def _duplicate(response: httpx2.Response) -> bool:
    """Wix answers a code that is taken with 409 (ALREADY_EXISTS); an answer in 4xx whose
    error names a duplicate is read the same way."""
    status = response.status_code
    if status == 409:
        return True
    if not 400 <= status < 500 or status == 429:
        return False
    return bool(_DUPLICATE.search(response.text))
