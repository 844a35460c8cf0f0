"""Which scenario panel draws which kind (its own module: the panels import scene.py)."""

from __future__ import annotations

from marl_tui.tui.widgets.external import ExternalPanel
from marl_tui.tui.widgets.fulfillment import FulfillmentPanel
from marl_tui.tui.widgets.pricing import PricingPanel
from marl_tui.tui.widgets.scene import ScenePanel
from marl_tui.tui.widgets.warehouse import WarehousePanel

PANELS: dict[str, type[ScenePanel]] = {"pricing": PricingPanel, "warehouse": WarehousePanel,
                                       "fulfillment": FulfillmentPanel}


def scene_panel_for(kind: str) -> ScenePanel:
    """The panel for a scenario kind; any other kind (an external env) gets the generic one."""
    return PANELS.get(kind, ExternalPanel)(id="scene")
