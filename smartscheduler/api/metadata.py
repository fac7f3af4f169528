from rest_framework.metadata import SimpleMetadata


class Metadata(SimpleMetadata):
    """`OPTIONS` answers what the view is and speaks, without describing its input.

    DRF's SimpleMetadata describes the input by instantiating the serializer and, for PUT, by
    calling `get_object()`, which our views (lookups inside services, no `queryset`) do not
    implement: OPTIONS on `PUT /api/jobs/{id}/rating` was a 500. The input is in the schema.
    """

    def determine_metadata(self, request, view) -> dict:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }
