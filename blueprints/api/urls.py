"""Blueprint and check-result routes."""

from blueprints.api.views import BlueprintViewSet, CheckEvaluationViewSet

routes = [
    ("blueprints", BlueprintViewSet, "blueprint"),
    ("check-results", CheckEvaluationViewSet, "check-result"),
]
