"""The Airflow plugin of the Cronium view: its app under the api-server and its entry in the UI's navigation.

Registered through the ``airflow.plugins`` entry point (``cronium_view`` in pyproject.toml). The api-server
mounts the app at ``/cronium-view`` (not under the webhook app's ``/cronium``: Starlette mounts match a
whole path segment, so neither shadows the other), and the UI shows a "Cronium" entry in its navigation that
embeds the view at ``/plugin/cronium``.

Every Airflow process loads plugins; this module imports neither FastAPI nor the records code. The app is
built on the first request the api-server hands it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cronium_provider.lazy_asgi import LazyApp
from cronium_provider.naming import VIEW_PLUGIN, VIEW_UI_ROUTE, VIEW_URL_PREFIX


class CroniumViewPlugin(AirflowPlugin):
    """Serves the Cronium view at ``/cronium-view/`` and adds "Cronium" to the UI's navigation."""

    name = VIEW_PLUGIN
    fastapi_apps = [
        {"app": LazyApp("cronium_provider.view.app:create_app"), "url_prefix": VIEW_URL_PREFIX, "name": "Cronium view"},
    ]
    external_views = [
        {
            "name": "Cronium",
            "href": VIEW_URL_PREFIX + "/",
            "destination": "nav",
            "url_route": VIEW_UI_ROUTE,
            "nav_top_level": True,
        },
    ]
