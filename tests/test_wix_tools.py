"""The Wix shop tools against a local HTTP server standing in for Wix's REST API: each tool's
request and trimmed answer, each class of error, retries that honour Retry-After, and a
coupon creation that is never repeated when its outcome is unknown."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agent_core.models import RiskLevel, RunStatus, ToolCallStatus
from agent_core.runtime import build_tools
from agent_core.tools.gateway import ToolGateway, ToolResult, validate_args
from agent_core.tools.wix import WixClient, observed_size, wix_tools
from tests.support import KEY, agent_settings, make_objective, make_orchestrator, run_to_end
from tests.wix_server import COUPONS, ORDERS, PRODUCTS, WixServer

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


@pytest.fixture
def client(wix_server: WixServer) -> Iterator[WixClient]:
    opened = WixClient(
        api_key=wix_server.api_key, site_id=wix_server.site_id, base_url=wix_server.url
    )
    yield opened
    opened.close()


def tools(client: WixClient, **options):
    return {tool.name: tool for tool in wix_tools(client, now=lambda: NOW, **options)}


def call(tool, args, *, timeout_s: float | None = None) -> ToolResult:
    parsed = validate_args(tool, args)
    assert not isinstance(parsed, str), parsed
    return ToolGateway().execute(tool, parsed, run_id="run-1", timeout_s=timeout_s or tool.timeout)


def search_products(client, timeout_s=None, **args) -> ToolResult:
    return call(tools(client)["wix_search_products"], args, timeout_s=timeout_s)


def search_orders(client, **args) -> ToolResult:
    return call(tools(client)["wix_search_orders"], args)


def create_coupon(client, timeout_s=None, **args) -> ToolResult:
    return call(tools(client)["wix_create_coupon"], args, timeout_s=timeout_s)


def wix_settings(server: WixServer, **overrides: object) -> dict[str, object]:
    return {
        "wix_api_key": server.api_key,
        "wix_site_id": server.site_id,
        "wix_api_base_url": server.url,
        **overrides,
    }


# --- declarations -------------------------------------------------------------------------------


def test_the_seed_tool_names_with_their_risk_and_side_effects(sqlite_store, wix_server):
    registry = build_tools(
        agent_settings(**wix_settings(wix_server)),
        data_engine=sqlite_store.engine,
        content_llm=None,
    )

    described = {item["name"]: item for item in (tool.describe() for tool in registry)}
    facts = {
        name: (described[name]["risk"], described[name]["side_effects"])
        for name in ("wix_search_products", "wix_search_orders", "wix_create_coupon")
    }
    assert facts == {
        "wix_search_products": ("low", False),
        "wix_search_orders": ("low", False),
        "wix_create_coupon": ("medium", True),
    }
    assert registry.get("wix_create_coupon").risk is RiskLevel.MEDIUM
    assert "already exists" in described["wix_create_coupon"]["description"]
    assert described["wix_search_orders"]["args_schema"]["properties"]["payment_status"]


# --- wix_search_products ------------------------------------------------------------------------


def test_search_products_sends_wix_query_and_returns_trimmed_products(client, wix_server):
    result = search_products(client, name="arabica")

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result == {
        "products": [
            {
                "id": wix_server.products[2]["id"],
                "name": "Colombian Arabica",
                "price": 35,
                "currency": "USD",
                "discounted_price": 30,
                "in_stock": True,
                "quantity": 12,
                "sku": "COL-250",
            }
        ],
        "count": 1,
        "total": 1,
    }
    (request,) = wix_server.hits(PRODUCTS)
    assert request.headers["Authorization"] == wix_server.api_key
    assert request.headers["wix-site-id"] == wix_server.site_id
    query = request.body["query"]
    assert isinstance(query["filter"], str)  # Catalog V1 takes the filter as a JSON string
    assert json.loads(query["filter"]) == {"name": {"$contains": "arabica"}}
    assert query["paging"] == {"limit": 10, "offset": 0}


def test_search_products_by_price_range_and_stock(client, wix_server):
    in_stock = search_products(client, min_price=30, max_price=40, in_stock=True)
    out_of_stock = search_products(client, in_stock=False)
    cheap = search_products(client, max_price=20)

    assert [p["name"] for p in in_stock.result["products"]] == [
        "Indonesian Blend",
        "Colombian Arabica",
    ]
    assert [p["name"] for p in out_of_stock.result["products"]] == ["Ethiopian Yirgacheffe"]
    assert out_of_stock.result["products"][0]["in_stock"] is False
    assert [p["name"] for p in cheap.result["products"]] == ["Coffee Mug"]
    assert cheap.result["products"][0]["price"] == 12.5
    sent = json.loads(wix_server.hits(PRODUCTS)[0].body["query"]["filter"])
    assert sent == {
        "price": {"$gte": 30, "$lte": 40},
        "inventoryStatus": {"$hasSome": ["IN_STOCK", "PARTIALLY_OUT_OF_STOCK"]},
    }


def test_search_products_honours_limit_and_stays_within_the_observation_cap(wix_server):
    wix_server.products = wix_server.products * 20  # 100 products
    client = WixClient(
        api_key=wix_server.api_key, site_id=wix_server.site_id, base_url=wix_server.url
    )
    try:
        limited = call(tools(client)["wix_search_products"], {"limit": 3})
        capped = call(tools(client, max_chars=1000)["wix_search_products"], {"limit": 100})
    finally:
        client.close()

    assert limited.result["count"] == 3
    assert len(limited.result["products"]) == 3
    assert limited.result["total"] == 100
    assert observed_size(capped.result) <= 1000
    shown = len(capped.result["products"])
    assert 0 < shown < 100
    assert capped.result["note"].startswith(f"{100 - shown} more not shown")
    assert wix_server.hits(PRODUCTS)[1].body["query"]["paging"]["limit"] == 100


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"min_price": 50, "max_price": 10}, "min_price is above max_price"),
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"name": ""}, "name"),
        ({"category": "coffee"}, "category"),
    ],
)
def test_invalid_product_searches_are_refused_naming_the_problem(client, args, field):
    refusal = validate_args(tools(client)["wix_search_products"], args)

    assert isinstance(refusal, str)
    assert refusal.startswith("invalid arguments for wix_search_products: ")
    assert field in refusal


# --- wix_search_orders --------------------------------------------------------------------------


def test_search_orders_by_payment_status_and_email_newest_first(client, wix_server):
    result = search_orders(client, payment_status="PAID", customer_email="ada@example.com")

    assert result.status is ToolCallStatus.SUCCEEDED
    assert [order["number"] for order in result.result["orders"]] == ["10003", "10002"]
    assert result.result["orders"][0] == {
        "id": wix_server.orders[1]["id"],
        "number": "10003",
        "created": "2026-11-12T10:00:00.000Z",
        "status": "APPROVED",
        "payment_status": "PAID",
        "fulfillment_status": "NOT_FULFILLED",
        "customer_email": "ada@example.com",
        "customer_name": "Ada Martin",
        "total": 72.5,
        "currency": "USD",
        "items": ["1 x Indonesian Blend", "3 x Coffee Mug"],
    }
    assert result.result["count"] == 2
    assert "more" not in result.result
    (request,) = wix_server.hits(ORDERS)
    assert request.body == {
        "search": {
            "filter": {
                "$and": [
                    {"paymentStatus": {"$eq": "PAID"}},
                    {"buyerInfo.email": {"$eq": "ada@example.com"}},
                ]
            },
            "sort": [{"fieldName": "createdDate", "order": "DESC"}],
            "cursorPaging": {"limit": 10},
        }
    }


def test_search_orders_in_a_date_range_includes_the_last_day(client, wix_server):
    result = search_orders(client, created_from="2026-11-05", created_to="2026-11-12")

    assert [order["number"] for order in result.result["orders"]] == ["10003", "10002"]
    # Each bound is its own condition: Wix refuses one object holding both.
    assert wix_server.hits(ORDERS)[0].body["search"]["filter"] == {
        "$and": [
            {"createdDate": {"$gte": "2026-11-05T00:00:00.000Z"}},
            {"createdDate": {"$lt": "2026-11-13T00:00:00.000Z"}},
        ]
    }


def test_search_orders_by_fulfillment_status_says_when_there_are_more(client):
    result = search_orders(client, fulfillment_status="FULFILLED", limit=1)

    assert [order["number"] for order in result.result["orders"]] == ["10002"]
    assert result.result["more"] is True


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"payment_status": "paid"}, "payment_status"),
        ({"fulfillment_status": "SHIPPED"}, "fulfillment_status"),
        ({"customer_email": "ada@example"}, "customer_email"),
        ({"created_from": "last week"}, "created_from"),
        ({"created_from": "2026-11-12", "created_to": "2026-11-01"}, "created_from is not before"),
    ],
)
def test_invalid_order_searches_are_refused_naming_the_problem(client, args, field):
    refusal = validate_args(tools(client)["wix_search_orders"], args)

    assert isinstance(refusal, str)
    assert field in refusal


# --- wix_create_coupon --------------------------------------------------------------------------


def test_create_coupon_sends_the_specification_and_returns_the_coupon(client, wix_server):
    result = create_coupon(
        client, code="SPRING15", percent_off=15, expires_at="2026-12-31", usage_limit=100
    )

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.attempts == 1
    coupon = wix_server.coupons["SPRING15"]
    assert result.result == {
        "created": True,
        "id": coupon["id"],
        "code": "SPRING15",
        "name": "SPRING15",
        "discount": "15% off",
        "applies_to": "all store products",
        "starts": "2026-11-25T09:30:00.000Z",
        "expires": "2027-01-01T00:00:00.000Z",
        "usage_limit": 100,
    }
    assert coupon["specification"] == {
        "name": "SPRING15",
        "code": "SPRING15",
        "startTime": int(NOW.timestamp() * 1000),
        "expirationTime": int(datetime(2027, 1, 1, tzinfo=UTC).timestamp() * 1000),
        "usageLimit": 100,
        "percentOffRate": 15,
        "scope": {"namespace": "stores", "group": {"name": "product"}},
        "active": True,
    }
    assert wix_server.creations == 1


def test_create_coupon_with_a_fixed_amount_and_a_name(client, wix_server):
    result = create_coupon(client, code="SAVE10", name="Ten off for our regulars", amount_off=10)

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result["discount"] == "10 off (store currency)"
    assert result.result["expires"] is None
    spec = wix_server.coupons["SAVE10"]["specification"]
    assert spec["moneyOffAmount"] == 10
    assert spec["name"] == "Ten off for our regulars"
    assert "percentOffRate" not in spec
    assert "expirationTime" not in spec


def test_a_second_coupon_with_the_same_code_is_reported_as_already_existing(client, wix_server):
    first = create_coupon(client, code="SPRING15", percent_off=15)
    second = create_coupon(client, code="SPRING15", percent_off=20)

    assert first.status is ToolCallStatus.SUCCEEDED
    assert second.status is ToolCallStatus.FAILED
    assert second.error.startswith(
        "a coupon with code SPRING15 already exists on the Wix site: no new coupon was created"
    )
    assert wix_server.creations == 1
    assert wix_server.coupons["SPRING15"]["specification"]["percentOffRate"] == 15
    assert len(wix_server.hits(COUPONS)) == 2


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"code": "X1", "percent_off": 10, "amount_off": 5}, "exactly one of percent_off"),
        ({"code": "X1"}, "exactly one of percent_off"),
        ({"code": "SPRING-SALE-2026-EXTRA", "percent_off": 10}, "code"),
        ({"code": "SPRING 15", "percent_off": 10}, "code"),
        ({"code": "X1", "percent_off": 150}, "percent_off"),
        ({"code": "X1", "amount_off": -5}, "amount_off"),
        ({"code": "X1", "percent_off": 10, "usage_limit": 0}, "usage_limit"),
    ],
)
def test_invalid_coupons_are_refused_before_anything_is_sent(client, wix_server, args, says):
    refusal = validate_args(tools(client)["wix_create_coupon"], args)

    assert isinstance(refusal, str)
    assert says in refusal
    assert wix_server.requests == []


def test_a_coupon_expiring_in_the_past_is_refused_before_anything_is_sent(client, wix_server):
    result = create_coupon(client, code="LATE", percent_off=10, expires_at="2026-11-01")

    assert result.status is ToolCallStatus.FAILED
    assert result.error == "expires_at 2026-11-02T00:00:00.000Z is already past"
    assert wix_server.requests == []


# --- errors -------------------------------------------------------------------------------------


READ_AND_CREATE = [
    ("wix_search_products", {}, PRODUCTS),
    ("wix_search_orders", {}, ORDERS),
    ("wix_create_coupon", {"code": "SPRING15", "percent_off": 15}, COUPONS),
]


def test_unconfigured_tools_say_which_variables_to_set(wix_server):
    found = tools(WixClient(api_key=None, site_id="", base_url=wix_server.url))
    only_key = tools(WixClient(api_key="k", site_id=None, base_url=wix_server.url))

    for name, args, _path in READ_AND_CREATE:
        result = call(found[name], args)
        assert result.status is ToolCallStatus.FAILED
        assert result.attempts == 1
        assert result.error == "Wix is not configured: set WIX_API_KEY and WIX_SITE_ID"
    assert call(only_key["wix_search_orders"], {}).error == (
        "Wix is not configured: set WIX_SITE_ID"
    )
    assert wix_server.requests == []


def test_each_tool_says_before_any_call_what_to_set(client, wix_server):
    unset = tools(WixClient(api_key=None, site_id="", base_url=wix_server.url))
    only_key = tools(WixClient(api_key="k", site_id=None, base_url=wix_server.url))

    assert {name: tool.problem() for name, tool in unset.items()} == dict.fromkeys(
        unset, "Wix is not configured: set WIX_API_KEY and WIX_SITE_ID"
    )
    assert {name: tool.problem() for name, tool in only_key.items()} == dict.fromkeys(
        only_key, "Wix is not configured: set WIX_SITE_ID"
    )
    assert {name: tool.problem() for name, tool in tools(client).items()} == dict.fromkeys(
        unset, None
    )
    assert wix_server.requests == []  # asking reads the settings only


@pytest.mark.parametrize(("name", "args", "path"), READ_AND_CREATE)
def test_a_refused_api_key_names_what_to_set_and_is_not_retried(wix_server, name, args, path):
    wrong = WixClient(api_key="wr0ng-wix-k3y", site_id=wix_server.site_id, base_url=wix_server.url)
    try:
        result = call(tools(wrong)[name], args)
    finally:
        wrong.close()

    assert result.status is ToolCallStatus.FAILED
    assert "Wix refused the API key (HTTP 401): set WIX_API_KEY" in result.error
    assert "WIX_SITE_ID" in result.error
    assert "Wix said: Unauthorized" in result.error
    assert "wr0ng-wix-k3y" not in result.error
    assert len(wix_server.hits(path)) == 1
    assert wix_server.creations == 0


@pytest.mark.parametrize(
    ("name", "args", "path", "permission"),
    [
        (*READ_AND_CREATE[0], "read products"),
        (*READ_AND_CREATE[1], "read orders"),
        (*READ_AND_CREATE[2], "manage coupons"),
    ],
)
def test_a_permission_denied_names_the_missing_permission(
    client, wix_server, name, args, path, permission
):
    wix_server.denied.add(path)

    result = call(tools(client)[name], args)

    assert result.status is ToolCallStatus.FAILED
    assert (
        "Wix denied access (HTTP 403): the API key in WIX_API_KEY lacks the permission to "
        f"{permission} on the site set in WIX_SITE_ID"
    ) in result.error
    assert "PERMISSION_DENIED" in result.error
    assert len(wix_server.hits(path)) == 1


def test_not_found_says_to_check_the_site_and_the_address(wix_server):
    elsewhere = WixClient(
        api_key=wix_server.api_key, site_id=wix_server.site_id, base_url=f"{wix_server.url}/v9"
    )
    try:
        result = call(tools(elsewhere)["wix_search_products"], {})
    finally:
        elsewhere.close()

    assert result.status is ToolCallStatus.FAILED
    assert result.error.startswith(
        "Wix answered 404 Not Found for /stores/v1/products/query: check WIX_SITE_ID (and "
        f"WIX_API_BASE_URL, {wix_server.url}/v9), and that the site has Wix Stores"
    )
    assert len(wix_server.requests) == 1


def test_a_bad_request_reports_wix_own_words(client, wix_server):
    wix_server.trouble(ORDERS, status=400)

    result = search_orders(client, payment_status="PAID")

    assert result.status is ToolCallStatus.FAILED
    assert result.error == (
        "Wix refused the request (HTTP 400). Wix said: Bad request (INVALID_ARGUMENT)"
    )
    assert len(wix_server.hits(ORDERS)) == 1


# --- retries of reads ---------------------------------------------------------------------------


def test_a_rate_limited_read_waits_what_retry_after_asks_then_succeeds(client, wix_server):
    wix_server.trouble(PRODUCTS, status=429, retry_after="1")

    started = time.monotonic()
    result = search_products(client, name="blend")
    elapsed = time.monotonic() - started

    assert result.status is ToolCallStatus.SUCCEEDED
    assert [p["name"] for p in result.result["products"]] == ["Indonesian Blend"]
    first, second = wix_server.hits(PRODUCTS)
    assert second.at - first.at >= 1.0
    assert 1.0 <= elapsed < 2.0
    assert result.attempts == 1  # one tool call; the waiting happened inside it


def test_a_retry_after_longer_than_the_time_left_fails_at_once_saying_so(client, wix_server):
    wix_server.trouble(PRODUCTS, status=429, retry_after="30")

    started = time.monotonic()
    result = search_products(client)

    assert time.monotonic() - started < 1
    assert result.status is ToolCallStatus.FAILED
    assert result.timed_out is False
    assert result.error.startswith(
        "Wix is rate limiting requests (HTTP 429); it asks to wait 30 s; gave up after 1 "
        "attempt(s): waiting 30 s more does not fit in the "
    )
    assert len(wix_server.hits(PRODUCTS)) == 1


def test_a_retry_after_given_as_an_http_date_is_honoured(client, wix_server):
    when = datetime.now(UTC).timestamp() + 2
    wix_server.trouble(
        ORDERS,
        status=429,
        retry_after=time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when)),
    )

    result = search_orders(client)

    assert result.status is ToolCallStatus.SUCCEEDED
    first, second = wix_server.hits(ORDERS)
    assert second.at - first.at >= 0.9  # the date has a one-second resolution


def test_server_errors_on_a_read_are_retried(client, wix_server):
    wix_server.trouble(ORDERS, status=503, times=2)

    result = search_orders(client, payment_status="PAID")

    assert result.status is ToolCallStatus.SUCCEEDED
    assert result.result["count"] == 2
    assert len(wix_server.hits(ORDERS)) == 3


def test_a_read_that_keeps_failing_gives_up_with_the_last_reason(client, wix_server):
    wix_server.trouble(PRODUCTS, status=500, times=10)

    started = time.monotonic()
    result = search_products(client)

    assert result.status is ToolCallStatus.FAILED
    assert result.error == (
        "Wix had a server error (HTTP 500). Wix said: Internal server error (INTERNAL); gave up "
        "after 4 attempts"
    )
    assert len(wix_server.hits(PRODUCTS)) == 4
    assert 3.5 <= time.monotonic() - started < 5  # the 0.5, 1 and 2 s backoffs


def test_a_read_that_times_out_is_tried_again(wix_server):
    wix_server.trouble(PRODUCTS, delay_s=1.5)
    impatient = WixClient(
        api_key=wix_server.api_key,
        site_id=wix_server.site_id,
        base_url=wix_server.url,
        read_attempt_timeout_s=0.5,
    )
    try:
        result = call(tools(impatient)["wix_search_products"], {"name": "mug"})
    finally:
        impatient.close()

    assert result.status is ToolCallStatus.SUCCEEDED
    assert [p["name"] for p in result.result["products"]] == ["Coffee Mug"]
    assert len(wix_server.hits(PRODUCTS)) == 2


def test_an_unreachable_wix_is_retried_then_reported(wix_server, dead_port):
    nowhere = WixClient(
        api_key=wix_server.api_key,
        site_id=wix_server.site_id,
        base_url=f"http://127.0.0.1:{dead_port}",
    )
    try:
        result = call(tools(nowhere)["wix_search_orders"], {}, timeout_s=2.5)
    finally:
        nowhere.close()

    assert result.status is ToolCallStatus.FAILED
    assert result.timed_out is False
    assert result.error.startswith(f"could not reach Wix at http://127.0.0.1:{dead_port}: ")
    assert "gave up after 3 attempt(s)" in result.error


# --- a coupon is never created twice ------------------------------------------------------------


UNKNOWN_OUTCOMES = {  # how the answer to a request that reached Wix is lost
    "server-error-after-creating": ({"status": 500, "commit": True}, "Wix had a server error"),
    "connection-dropped-after-creating": ({"drop": True, "commit": True}, "connection to Wix"),
    "no-answer-in-time": ({"delay_s": 3, "commit": True}, "Wix did not answer within"),
}


@pytest.mark.parametrize("case", list(UNKNOWN_OUTCOMES))
def test_a_coupon_whose_outcome_is_unknown_is_reported_so_and_never_sent_again(
    client, wix_server, case
):
    how, cause = UNKNOWN_OUTCOMES[case]
    wix_server.trouble(COUPONS, **how)

    result = create_coupon(client, timeout_s=1.5, code="SPRING15", percent_off=15)

    assert result.status is ToolCallStatus.UNKNOWN
    assert result.attempts == 1
    assert result.result == {"error": result.error, "outcome": "unknown"}
    assert result.error.startswith(
        "the coupon SPRING15 may or may not have been created: the request left for Wix, then "
    )
    assert cause in result.error
    assert "It was not sent again" in result.error
    assert len(wix_server.hits(COUPONS)) == 1
    assert wix_server.creations == 1

    # The code makes a duplicate impossible and visible.
    again = create_coupon(client, code="SPRING15", percent_off=15)
    assert again.status is ToolCallStatus.FAILED
    assert "already exists" in again.error
    assert wix_server.creations == 1


def test_a_server_error_without_a_coupon_is_unknown_too_and_the_same_code_then_creates_it(
    client, wix_server
):
    wix_server.trouble(COUPONS, status=503)

    unknown = create_coupon(client, code="SPRING15", percent_off=15)
    again = create_coupon(client, code="SPRING15", percent_off=15)

    assert unknown.status is ToolCallStatus.UNKNOWN
    assert "HTTP 503" in unknown.error
    assert again.status is ToolCallStatus.SUCCEEDED
    assert wix_server.creations == 1
    assert len(wix_server.hits(COUPONS)) == 2


def test_a_coupon_that_could_not_be_sent_is_reported_as_not_created(wix_server, dead_port):
    nowhere = WixClient(
        api_key=wix_server.api_key,
        site_id=wix_server.site_id,
        base_url=f"http://127.0.0.1:{dead_port}",
    )
    try:
        result = create_coupon(nowhere, code="SPRING15", percent_off=15)
    finally:
        nowhere.close()

    assert result.status is ToolCallStatus.FAILED
    assert result.attempts == 1
    assert result.error.startswith(
        f"the coupon SPRING15 was not created: could not reach Wix at http://127.0.0.1:{dead_port}"
    )
    assert result.error.endswith(
        "Nothing reached Wix, so trying again later cannot make a duplicate"
    )


def test_a_rate_limited_coupon_is_not_created_and_not_retried(client, wix_server):
    wix_server.trouble(COUPONS, status=429, retry_after="1")

    result = create_coupon(client, code="SPRING15", percent_off=15)

    assert result.status is ToolCallStatus.FAILED
    assert result.error == (
        "the coupon SPRING15 was not created: Wix is rate limiting requests (HTTP 429); it "
        "asks to wait 1 s. Try again later"
    )
    assert len(wix_server.hits(COUPONS)) == 1
    assert wix_server.creations == 0


# --- inside a run -------------------------------------------------------------------------------


def test_a_run_whose_coupon_outcome_is_unknown_is_told_so_and_the_code_prevents_a_duplicate(
    store, llm_server, wix_server
):
    objective = make_objective(store, tools_allowed=["wix_search_products", "wix_create_coupon"])
    llm_server.step("Which coffees are in stock?", "wix_search_products", in_stock=True)
    llm_server.step("Create the coupon.", "wix_create_coupon", code="COFFEE10", percent_off=10)
    llm_server.step(
        "Did it work? Same code is safe.", "wix_create_coupon", code="COFFEE10", percent_off=10
    )
    llm_server.done("COFFEE10 exists: 10% off every coffee.")
    wix_server.trouble(COUPONS, drop=True, commit=True)
    settings = agent_settings(**wix_settings(wix_server))

    run = run_to_end(make_orchestrator(store, llm_server.url, settings=settings), objective.id)

    assert run.status is RunStatus.COMPLETED
    detail = store.run_detail(run.id)
    assert [call.status for call in detail.tool_calls] == [
        ToolCallStatus.SUCCEEDED,
        ToolCallStatus.UNKNOWN,
        ToolCallStatus.FAILED,
    ]
    assert [p["name"] for p in detail.steps[0].result["products"]] == [
        "Indonesian Blend",
        "Colombian Arabica",
        "Coffee Mug",
        "Gift Card",
    ]
    assert detail.steps[1].result["outcome"] == "unknown"
    unknown = [e for e in detail.events if e.event_type == "tool_outcome_unknown"]
    assert [(e.data["step_number"], e.data["tool"]) for e in unknown] == [(2, "wix_create_coupon")]
    told = str(llm_server.requests[2]["messages"][-1]["content"])
    assert "may or may not have been created" in told
    assert "already exists" in str(llm_server.requests[3]["messages"][-1]["content"])
    assert wix_server.creations == 1
    assert len(wix_server.hits(COUPONS)) == 2
    assert store.verify_ledger(KEY).ok
