"""An example agent runtime plugin: `lookup_shipping_rate`, what sending a parcel costs.

The runtime finds it through the `agent_core.tools` entry point this package declares in its
pyproject.toml (`shipping_rates = "agent_shipping_rates:tools"`). Copy this package to start
your own: see docs/tools.md in the agent runtime.

The rates live in this module to keep the example self-contained; a real plugin would read
its carrier's price list or API (its own settings from the environment, its secrets never in
a result or an error message).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_core.models import RiskLevel
from agent_core.tools import Tool, ToolContext, ToolInputError

# Price in euros by zone and service: a base price, plus a price per started kilogram.
RATES = {
    "domestic": {"standard": (4.90, 1.00), "express": (9.90, 1.50)},
    "europe": {"standard": (9.50, 2.00), "express": (19.00, 3.00)},
    "world": {"standard": (19.00, 4.50), "express": (39.00, 6.00)},
}
DELIVERY_DAYS = {
    "domestic": {"standard": "2-3", "express": "1"},
    "europe": {"standard": "3-6", "express": "1-2"},
    "world": {"standard": "6-12", "express": "2-4"},
}
HOME = "FR"
# The other member states of the European Union.
EU_MEMBERS = "AT BE BG CY CZ DE DK EE ES FI GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK"
EUROPE = frozenset(EU_MEMBERS.split())
MAX_WEIGHT_KG = 30


class ShippingRateArgs(BaseModel):
    """The arguments the model gives; their JSON schema goes into the agent's prompt."""

    model_config = ConfigDict(extra="forbid")

    country: str = Field(
        pattern=r"^[A-Za-z]{2}$", description="destination country, ISO code such as DE or US"
    )
    weight_kg: float = Field(gt=0, description=f"parcel weight in kilograms, up to {MAX_WEIGHT_KG}")
    service: Literal["standard", "express"] = "standard"


def lookup_shipping_rate(args: ShippingRateArgs, context: ToolContext) -> dict[str, Any]:
    """The handler: parsed arguments in, a small JSON-able result out."""
    if args.weight_kg > MAX_WEIGHT_KG:
        # ToolInputError: the model reads the message and can change its arguments.
        raise ToolInputError(
            f"parcels over {MAX_WEIGHT_KG} kg are not shipped; split the order into parcels"
        )
    country = args.country.upper()
    zone = "domestic" if country == HOME else "europe" if country in EUROPE else "world"
    base, per_kg = RATES[zone][args.service]
    started_kg = int(args.weight_kg) + (0 if args.weight_kg.is_integer() else 1)
    return {
        "country": country,
        "zone": zone,
        "service": args.service,
        "weight_kg": args.weight_kg,
        "price": round(base + per_kg * started_kg, 2),
        "currency": "EUR",
        "delivery_days": DELIVERY_DAYS[zone][args.service],
    }


def tools() -> list[Tool]:
    """The entry point: the runtime calls it once when it loads its tools."""
    return [
        Tool(
            name="lookup_shipping_rate",
            description=(
                "Price of sending one parcel from France: destination country, weight and "
                "service (standard or express). Returns the price in euros and delivery days."
            ),
            risk=RiskLevel.LOW,  # reads a price list: nothing an admin must approve
            side_effects=False,  # safe to retry; set True for anything that changes the world
            args_model=ShippingRateArgs,
            handler=lookup_shipping_rate,
        )
    ]
