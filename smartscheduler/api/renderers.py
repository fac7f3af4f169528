"""How the API answers a browser (`Accept: text/html`).

With DEBUG on (`scripts/run`), DRF's browsable page. DRF's renderer builds its forms from the
view's `serializer_class` and its filter form from `get_queryset()`; our views name neither
(each method picks its input and output serializers, and lookups live in the services), so
every list was a 500 there (`'JobListView' should either include a queryset attribute...`).
Here the page offers the raw JSON form, empty, wherever the view names no serializer, and no
filter form (the filters are query parameters, documented at /api/docs).

With DEBUG off there is no HTML renderer: a request that accepts only HTML gets the JSON
representation rather than a 406 (HTTP lets a server ignore an Accept it cannot meet).
"""

from rest_framework import renderers
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


def names_a_serializer(view) -> bool:
    from rest_framework.generics import GenericAPIView  # imports the views, which import us

    if getattr(view, "serializer_class", None) is not None:
        return True
    own = getattr(type(view), "get_serializer_class", None)
    return own is not None and own is not GenericAPIView.get_serializer_class


class _WithoutSerializer:
    """The view as the raw-data form sees it: no `get_serializer`, so the form starts empty.
    Attributes the form sets (`request`, `action`) land here, not on the view."""

    def __init__(self, view) -> None:
        self._view = view

    def __getattr__(self, name):
        if name == "get_serializer":
            raise AttributeError(name)
        return getattr(self._view, name)


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    def get_filter_form(self, data, view, request):
        return None

    def get_raw_data_form(self, data, view, method, request):
        if not names_a_serializer(view):
            view = _WithoutSerializer(view)
        return super().get_raw_data_form(data, view, method, request)


class ContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            if format_suffix:
                raise
            return renderers[0], renderers[0].media_type
