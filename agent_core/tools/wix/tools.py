"""The Wix tools themselves: their argument models, what a search returns to the agent
(ids, names, prices, statuses, totals, customer email; never raw API dumps, and within the
observation cap), and the declarations (risk, side effects)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
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
from agent_core.tools.wix.client import (
    COUPONS,
    MAX_RESULTS,
    ORDERS_SEARCH,
    PRODUCTS_QUERY,
    WixClient,
    retry_after_s,
    unavailable_sentence,
    wix_said,
)

if TYPE_CHECKING:
    pass

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
            raise ToolOutcomeUnknown(_unknown(code, reason + wix_said(response, client.api_key)))
        if status == 429:
            asked = retry_after_s(response.headers.get("Retry-After"))
            raise ToolError(
                f"the coupon {code} was not created: "
                f"{unavailable_sentence(response, asked, client.api_key)}. Try again later"
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
