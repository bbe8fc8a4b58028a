"""An HTTP server on 127.0.0.1 standing in for Wix's REST API, for the wix_* tools.

It answers the three endpoints the tools use with the shapes of Wix's public API reference
(Stores Catalog V1 Query Products, eCommerce Search Orders, Coupons V2 Create Coupon),
checks the `Authorization` and `wix-site-id` headers, evaluates the filters it is sent (an
unknown field or operator is a 400, as on Wix), and refuses a coupon code that exists with
409 ALREADY_EXISTS. Trouble is scripted per endpoint: an HTTP status (with Retry-After), a
delay, or a connection dropped after the request was read; `commit` applies the request
first, the way a server that did the work and then failed would. It keeps every request and
counts coupon creations.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRODUCTS = "/stores/v1/products/query"
ORDERS = "/ecom/v1/orders/search"
COUPONS = "/stores/v2/coupons"


def _price(amount: float, discounted: float | None = None) -> dict[str, Any]:
    discounted = amount if discounted is None else discounted
    return {
        "currency": "USD",
        "price": amount,
        "discountedPrice": discounted,
        "formatted": {"price": f"${amount:.2f}", "discountedPrice": f"${discounted:.2f}"},
    }


def _product(
    name: str, amount: float, stock: dict[str, Any], *, discounted: float | None = None, **extra
) -> dict[str, Any]:
    price = _price(amount, discounted)
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
        "name": name,
        "slug": name.lower().replace(" ", "-"),
        "visible": True,
        "productType": "physical",
        "description": f"<p>{name}, from the test catalog.</p>",
        "sku": "",
        "weight": 0,
        "stock": stock,
        "price": price,
        "priceData": price,
        "convertedPriceData": price,
        "ribbons": [],
        "media": {"items": []},
        "productOptions": [],
        "numericId": str(uuid.uuid5(uuid.NAMESPACE_URL, name).int % 10**16),
        "collectionIds": [],
        "variants": [],
        "lastUpdated": "2026-10-01T09:00:00.000Z",
        "createdDate": "2026-09-01T09:00:00.000Z",
        **extra,
    }


def default_products() -> list[dict[str, Any]]:
    return [
        _product(
            "Indonesian Blend",
            35,
            {"trackInventory": False, "inStock": True, "inventoryStatus": "IN_STOCK"},
        ),
        _product(
            "Ethiopian Yirgacheffe",
            36,
            {
                "trackInventory": True,
                "quantity": 0,
                "inStock": False,
                "inventoryStatus": "OUT_OF_STOCK",
            },
        ),
        _product(
            "Colombian Arabica",
            35,
            {
                "trackInventory": True,
                "quantity": 12,
                "inStock": True,
                "inventoryStatus": "IN_STOCK",
            },
            discounted=30,
            sku="COL-250",
        ),
        _product(
            "Coffee Mug",
            12.5,
            {"trackInventory": False, "inStock": True, "inventoryStatus": "PARTIALLY_OUT_OF_STOCK"},
        ),
        _product(
            "Gift Card",
            50,
            {"trackInventory": False, "inStock": True, "inventoryStatus": "IN_STOCK"},
            productType="digital",
        ),
    ]


def _money(amount: str) -> dict[str, str]:
    return {"amount": amount, "formattedAmount": f"${float(amount):.2f}"}


def _order(
    number: str,
    created: str,
    email: str,
    first: str,
    payment: str,
    fulfillment: str,
    total: str,
    lines: list[tuple[str, int]],
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-{number}")),
        "number": number,
        "createdDate": created,
        "updatedDate": created,
        "purchasedDate": created,
        "status": "APPROVED",
        "paymentStatus": payment,
        "fulfillmentStatus": fulfillment,
        "currency": "USD",
        "weightUnit": "KG",
        "taxIncludedInPrices": False,
        "buyerLanguage": "en",
        "buyerInfo": {"contactId": str(uuid.uuid5(uuid.NAMESPACE_URL, email)), "email": email},
        "billingInfo": {
            "address": {"country": "FR", "city": "Paris"},
            "contactDetails": {"firstName": first, "lastName": "Martin"},
        },
        "lineItems": [
            {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{number}-{name}")),
                "productName": {"original": name, "translated": name},
                "quantity": quantity,
                "price": _money("10.00"),
                "catalogReference": {"catalogItemId": str(uuid.uuid5(uuid.NAMESPACE_URL, name))},
            }
            for name, quantity in lines
        ],
        "priceSummary": {
            "subtotal": _money(total),
            "shipping": _money("0"),
            "tax": _money("0"),
            "discount": _money("0"),
            "total": _money(total),
        },
        "channelInfo": {"type": "WEB"},
        "seenByAHuman": True,
        "archived": False,
    }


def default_orders() -> list[dict[str, Any]]:
    return [
        _order(
            "10004",
            "2026-11-20T15:30:00.000Z",
            "zoe@example.com",
            "Zoé",
            "NOT_PAID",
            "NOT_FULFILLED",
            "30.00",
            [("Colombian Arabica", 1)],
        ),
        _order(
            "10003",
            "2026-11-12T10:00:00.000Z",
            "ada@example.com",
            "Ada",
            "PAID",
            "NOT_FULFILLED",
            "72.50",
            [("Indonesian Blend", 1), ("Coffee Mug", 3)],
        ),
        _order(
            "10002",
            "2026-11-05T08:15:00.000Z",
            "Ada@Example.com",
            "Ada",
            "PAID",
            "FULFILLED",
            "35.00",
            [("Indonesian Blend", 1)],
        ),
        _order(
            "10001",
            "2026-10-28T18:45:00.000Z",
            "bob@example.com",
            "Bob",
            "FULLY_REFUNDED",
            "FULFILLED",
            "50.00",
            [("Gift Card", 1)],
        ),
    ]


@dataclass
class Trouble:
    """How the next request to an endpoint misbehaves."""

    status: int | None = None  # answer with this status and a Wix error document
    retry_after: str | None = None
    delay_s: float = 0.0  # wait this long before answering
    drop: bool = False  # close the connection without answering
    commit: bool = False  # do what the request asks first (create the coupon)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class BadRequest(Exception):
    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field
        self.description = description


def _error(message: str, code: str, description: str | None = None) -> dict[str, Any]:
    """Wix's standard error document."""
    return {
        "message": message,
        "details": {
            "applicationError": {"code": code, "description": description or message, "data": {}}
        },
    }


def _lookup(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _compare(value: Any, op: str, operand: Any, field_name: str) -> bool:
    if isinstance(value, str) and isinstance(operand, str) and field_name.endswith("Date"):
        value, operand = _moment(value), _moment(operand)
    if isinstance(value, str) and isinstance(operand, str) and field_name.endswith("email"):
        value, operand = value.lower(), operand.lower()  # Wix matches emails without case
    if op == "$eq":
        return value == operand
    if op == "$ne":
        return value != operand
    if op == "$hasSome":
        return value in operand
    if op == "$contains":
        return str(operand).lower() in str(value or "").lower()
    if op == "$startsWith":
        return str(value or "").lower().startswith(str(operand).lower())
    if value is None:
        return False
    if isinstance(operand, str) and not isinstance(value, str):
        operand = float(operand)
    comparisons = {
        "$gt": lambda: value > operand,
        "$gte": lambda: value >= operand,
        "$lt": lambda: value < operand,
        "$lte": lambda: value <= operand,
    }
    if op not in comparisons:
        raise BadRequest(field_name, f"operator {op} is not supported")
    return comparisons[op]()


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(item: dict[str, Any], where: Any, fields: dict[str, str]) -> bool:
    """Evaluate a Wix filter over `item`; `fields` maps filterable names to item paths."""
    if not isinstance(where, dict):
        raise BadRequest("filter", "a filter is an object")
    for key, condition in where.items():
        if key in ("$and", "$or"):
            results = [matches(item, part, fields) for part in condition]
            if not (all(results) if key == "$and" else any(results)):
                return False
            continue
        if key not in fields:
            raise BadRequest(key, f"filtering by {key} is not supported")
        if not isinstance(condition, dict):
            condition = {"$eq": condition}
        if key.endswith("Date") and len(condition) > 1:
            raise BadRequest(key, "give each bound of a date range in its own condition")
        value = _lookup(item, fields[key])
        if not all(_compare(value, op, operand, key) for op, operand in condition.items()):
            return False
    return True


STATUS_ERRORS = {  # what a scripted status says, in Wix's error shape
    400: ("Bad request", "INVALID_ARGUMENT"),
    429: ("Too many requests", "RESOURCE_EXHAUSTED"),
    500: ("Internal server error", "INTERNAL"),
    502: ("Bad gateway", "UNAVAILABLE"),
    503: ("Service unavailable", "UNAVAILABLE"),
    504: ("Gateway timeout", "DEADLINE_EXCEEDED"),
}
PRODUCT_FIELDS = {
    "id": "id",
    "name": "name",
    "sku": "sku",
    "price": "priceData.price",
    "inventoryStatus": "stock.inventoryStatus",
    "productType": "productType",
}
ORDER_FIELDS = {
    "id": "id",
    "number": "number",
    "status": "status",
    "paymentStatus": "paymentStatus",
    "fulfillmentStatus": "fulfillmentStatus",
    "buyerInfo.email": "buyerInfo.email",
    "createdDate": "createdDate",
    "purchasedDate": "purchasedDate",
}


@dataclass
class WixServer:
    api_key: str = "IST.wix-test-api-key"
    site_id: str = "6f1c9a2e-0b5d-4c4e-9d0a-3f2b1e7c8a90"
    products: list[dict[str, Any]] = field(default_factory=default_products)
    orders: list[dict[str, Any]] = field(default_factory=default_orders)
    coupons: dict[str, dict[str, Any]] = field(default_factory=dict)  # by code
    denied: set[str] = field(default_factory=set)  # paths answered 403 PERMISSION_DENIED
    requests: list[Received] = field(default_factory=list)
    _troubles: dict[str, deque[Trouble]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # scripting ---------------------------------------------------------------------------------

    def trouble(self, path: str, times: int = 1, **how: Any) -> WixServer:
        """The next `times` requests to `path` misbehave as `how` says (see Trouble)."""
        with self._lock:
            queue = self._troubles.setdefault(path, deque())
            queue.extend(Trouble(**how) for _ in range(times))
        return self

    def hits(self, path: str) -> list[Received]:
        return [request for request in self.requests if request.path == path]

    @property
    def creations(self) -> int:
        """How many coupons were created."""
        return len(self.coupons)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # serving -----------------------------------------------------------------------------------

    def start(self) -> WixServer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                with peer._lock:
                    peer.requests.append(
                        Received("POST", self.path, dict(self.headers), body, time.monotonic())
                    )
                peer._answer(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: stop() waits for the serving loop to notice it.
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _answer(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        if handler.headers.get("Authorization") != self.api_key:
            _send(handler, 401, _error("Unauthorized", "UNAUTHENTICATED", "Invalid API key"))
            return
        if handler.headers.get("wix-site-id") != self.site_id:
            _send(handler, 404, _error("Site not found", "NOT_FOUND"))
            return
        route = {PRODUCTS: self._products, ORDERS: self._orders, COUPONS: self._create_coupon}
        action = route.get(handler.path)
        if action is None:
            _send(handler, 404, _error("Not Found", "NOT_FOUND", f"no endpoint {handler.path}"))
            return
        if handler.path in self.denied:
            _send(handler, 403, _error("Permission denied", "PERMISSION_DENIED"))
            return
        with self._lock:
            queue = self._troubles.get(handler.path)
            trouble = queue.popleft() if queue else None
        if trouble is None:
            _send(handler, *self._run(action, body))
            return
        done = self._run(action, body) if trouble.commit else None
        time.sleep(trouble.delay_s)
        if trouble.drop:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if trouble.status is not None:
            headers = {"Retry-After": trouble.retry_after} if trouble.retry_after else {}
            message, code = STATUS_ERRORS.get(trouble.status, ("Error", "UNKNOWN"))
            _send(handler, trouble.status, _error(message, code), headers)
            return
        _send(handler, *(done or self._run(action, body)))

    def _run(self, action: Any, body: Any) -> tuple[int, dict[str, Any]]:
        try:
            return 200, action(body if isinstance(body, dict) else {})
        except BadRequest as bad:
            return 400, {
                "message": bad.description,
                "details": {
                    "validationError": {
                        "fieldViolations": [
                            {
                                "field": bad.field,
                                "description": bad.description,
                                "violatedRule": "OTHER",
                            }
                        ]
                    }
                },
            }
        except AlreadyExists as taken:
            return 409, _error(
                f"Coupon with code '{taken.code}' already exists",
                "ALREADY_EXISTS",
                f"A coupon with code {taken.code} already exists on this site",
            )

    def _products(self, body: dict[str, Any]) -> dict[str, Any]:
        query = body.get("query") or {}
        where = json.loads(query["filter"]) if query.get("filter") else {}  # a JSON string on V1
        paging = query.get("paging") or {}
        limit, offset = int(paging.get("limit", 100)), int(paging.get("offset", 0))
        if not 1 <= limit <= 100:
            raise BadRequest("query.paging.limit", "must be between 1 and 100")
        found = [product for product in self.products if matches(product, where, PRODUCT_FIELDS)]
        return {
            "products": found[offset : offset + limit],
            "metadata": {"items": limit, "offset": offset},
            "totalResults": len(found),
        }

    def _orders(self, body: dict[str, Any]) -> dict[str, Any]:
        search = body.get("search") or {}
        where = search.get("filter") or {}
        limit = int((search.get("cursorPaging") or {}).get("limit", 100))
        if not 1 <= limit <= 100:
            raise BadRequest("search.cursorPaging.limit", "must be between 1 and 100")
        found = [order for order in self.orders if matches(order, where, ORDER_FIELDS)]
        found.sort(key=lambda order: order["createdDate"], reverse=True)
        page = found[:limit]
        return {
            "orders": page,
            "metadata": {
                "count": len(page),
                "cursors": {"next": "cursor-2" if len(found) > limit else None},
                "hasNext": len(found) > limit,
            },
        }

    def _create_coupon(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("specification")
        if not isinstance(spec, dict):
            raise BadRequest("specification", "is required")
        for name in ("name", "code", "startTime"):
            if spec.get(name) in (None, ""):
                raise BadRequest(f"specification.{name}", "is required")
        if not isinstance(spec["startTime"], int) or spec["startTime"] < 10**12:
            raise BadRequest("specification.startTime", "milliseconds since the epoch")
        kinds = [k for k in ("percentOffRate", "moneyOffAmount", "fixedPriceAmount") if k in spec]
        if len(kinds) != 1:
            raise BadRequest("specification", "exactly one coupon type is required")
        if "scope" not in spec and "minimumSubtotal" not in spec:
            raise BadRequest(
                "specification.scope",
                "When scope or minimumSubtotal is not used - only FreeShipping coupon is allowed",
            )
        code = str(spec["code"])
        if len(code) > 20:
            raise BadRequest("specification.code", "up to 20 characters")
        with self._lock:
            if code in self.coupons:
                raise AlreadyExists(code)
            coupon_id = str(uuid.uuid4())
            self.coupons[code] = {"id": coupon_id, "specification": spec}
        return {"id": coupon_id}


class AlreadyExists(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    document: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    payload = json.dumps(document).encode()
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
    except OSError:  # the client gave up waiting: what a slow server meets
        pass
