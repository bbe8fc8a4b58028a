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

from agent_core.tools.wix.client import (
    COUPONS,
    DEFAULT_BASE_URL,
    ORDERS_SEARCH,
    PRODUCTS_QUERY,
    WixClient,
)
from agent_core.tools.wix.tools import observed_size, wix_tools

__all__ = [
    "COUPONS",
    "DEFAULT_BASE_URL",
    "ORDERS_SEARCH",
    "PRODUCTS_QUERY",
    "WixClient",
    "observed_size",
    "wix_tools",
]
